"""confluent-kafka (librdkafka) AdminClient: authorized operations (librdkafka test 0081).

With no authorizer, Kafka answers every operation that applies to the resource: for a topic
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS; for the cluster
CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE. Without
include_authorized_operations the client reports none.

Usage: confluent_authorized_ops.py HOST:PORT
"""

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic

from potok_testlib import check_eq, main, step, unique

TIMEOUT = 20.0

TOPIC_OPS = {AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
             AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
             AclOperation.ALTER_CONFIGS}
CLUSTER_OPS = {AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE,
               AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
               AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE}


def ops(value):
    return set(value or [])


def run(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = unique("authops")
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                        operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)

    step("describe_topics with and without include_authorized_operations")
    described = admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT,
                                      include_authorized_operations=True)[topic].result(TIMEOUT)
    check_eq(ops(described.authorized_operations), TOPIC_OPS, "topic authorized operations")
    plain = admin.describe_topics(TopicCollection([topic]),
                                  request_timeout=TIMEOUT)[topic].result(TIMEOUT)
    check_eq(ops(plain.authorized_operations), set(), "topic operations when not requested")

    step("describe_cluster with and without include_authorized_operations")
    cluster = admin.describe_cluster(request_timeout=TIMEOUT,
                                     include_authorized_operations=True).result(TIMEOUT)
    check_eq(ops(cluster.authorized_operations), CLUSTER_OPS, "cluster authorized operations")
    plain = admin.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
    check_eq(ops(plain.authorized_operations), set(), "cluster operations when not requested")


if __name__ == "__main__":
    main(run)
