#!/bin/sh
# Installs everything sluice needs to build, test and benchmark on Debian 12, as root
# (or through sudo). Safe to run again: apt-get skips what is already there.
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PACKAGES="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  libmicrohttpd-dev libjansson-dev liblmdb-dev lmdb-utils zlib1g-dev libcmocka-dev
  python3 curl wrk nginx-light valgrind librdkafka-dev kcat libsimdjson-dev g++
  libpq-dev postgresql-15 postgresql-client-15"
# Parquet writer: its codecs, and node/npm for the DuckDB and hyparquet readers in tests.
PACKAGES="$PACKAGES libsnappy-dev libzstd-dev nodejs"
# Delta Lake: zstd unpacks the Delta tables of ../shared/data in the tests.
PACKAGES="$PACKAGES zstd"
# storage: S3 over libcurl (OpenSSL flavour, whose libcrypto signs), S3 XML via libxml2
PACKAGES="$PACKAGES libcurl4-openssl-dev libssl-dev libxml2-dev"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
# Debian's nodejs comes without npm (a package of its own); a machine whose node came
# from elsewhere has its npm already, and Debian's npm would conflict with it.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
