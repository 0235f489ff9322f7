"""Shared helpers for the real-client integration scripts driven by crates/potok/tests/clients.rs.

Every script takes the broker's bootstrap address as its only argument, raises on the first failed
check with a message naming what was expected and what came back, and arms a whole-script alarm so
that a broker that stops answering makes the script fail instead of hang.
"""

import os
import signal
import sys
import time
import uuid


class CheckFailed(Exception):
    """A check in a client script did not hold."""


def check(condition, message):
    """Raises CheckFailed with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailed(message)


def check_eq(actual, expected, what):
    """Raises CheckFailed unless `actual == expected`, printing both (shortened if they are long)."""
    if actual != expected:
        raise CheckFailed(f"{what}: expected {short(expected)}, got {short(actual)}")


def short(value, limit=300):
    text = repr(value)
    if len(text) > limit:
        return text[:limit] + f"... ({len(text)} chars)"
    return text


def unique(prefix):
    """A topic name that no other script or earlier run on the same broker uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(predicate, what, timeout=15.0, interval=0.1):
    """Polls `predicate` until it returns a truthy value, which is returned; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # The broker may answer with a retriable error meanwhile.
            last_error = error
        time.sleep(interval)
    raise CheckFailed(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def main(run, total_timeout=200):
    """Runs `run(bootstrap)` under an alarm and turns any failure into exit status 1 with a message.

    The alarm is a last resort: every client call below also has its own timeout, so that the
    message of a failed run says which step got stuck.
    """
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} HOST:PORT", file=sys.stderr)
        sys.exit(2)
    bootstrap = sys.argv[1]
    name = os.path.basename(sys.argv[0])

    def on_alarm(_signum, _frame):
        raise CheckFailed(f"{name}: whole-script timeout of {total_timeout}s expired")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(total_timeout)
    started = time.monotonic()
    try:
        run(bootstrap)
    except Exception as error:
        import traceback

        traceback.print_exc()
        print(f"FAILED {name}: {type(error).__name__}: {error}", file=sys.stderr)
        sys.stderr.flush()
        # os._exit: librdkafka handles left open must not keep the process alive past a failure.
        os._exit(1)
    signal.alarm(0)
    print(f"OK {name} in {time.monotonic() - started:.1f}s")
    sys.stdout.flush()
    os._exit(0)


def step(message):
    """Progress line, so a failure's output shows how far the script got."""
    print(f"-- {message}", flush=True)
