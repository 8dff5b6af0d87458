# keyvend, multi-stage. The build stage uses the same install script as the README and CI
# (tools/install-deps.sh), so the three cannot drift. (No Docker engine runs on the
# development machines; this file is kept simple and in step by hand.)
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN ./tools/install-deps.sh \
 && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build -j2 --target keyvend

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends librocksdb7.8 libabsl20220623 libssl3 \
      libcpp-httplib0.11 libsimdjson14 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/src/keyvend /usr/local/bin/keyvend
VOLUME /var/lib/keyvend
WORKDIR /var/lib/keyvend
ENTRYPOINT ["/usr/local/bin/keyvend"]
# 8080: buyers and merchants; 8081: the ops listener (payment notify, health, metrics).
EXPOSE 8080 8081
CMD ["serve", "--listen", "0.0.0.0:8080", "--ops-listen", "0.0.0.0:8081", "--access-log", "-", "--data-dir", "/var/lib/keyvend/data", "--master-key-file", "/var/lib/keyvend/master.key"]
