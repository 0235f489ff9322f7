# Potok broker image: the default build (no client tools, so no cmake/librdkafka needed).
# docker build -t potok .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p potok

FROM debian:bookworm-slim
COPY --from=build /src/target/release/potok /usr/local/bin/potok
# Client listener and controller (quorum) listener; data under /var/lib/potok.
EXPOSE 9092 9093
VOLUME /var/lib/potok
ENTRYPOINT ["potok"]
CMD ["serve", "--set", "log.dirs=/var/lib/potok", "--set", "listeners=PLAINTEXT://0.0.0.0:9092", "--set", "advertised.listeners=PLAINTEXT://localhost:9092"]
