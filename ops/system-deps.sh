#!/usr/bin/env bash
# Installs the Debian packages the hub and its tests use: a Java runtime and Maven (Apache Kafka's broker and its
# jars), xmlsec1 (interop), softhsm2 (PKCS#11), openssl (OCSP responder, TSA). Does nothing when they are already
# there; needs root (or sudo) otherwise.
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v xmlsec1 >/dev/null 2>&1 || need+=(xmlsec1)
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # headless, for the dashboard's tests
command -v promtool >/dev/null 2>&1 || need+=(prometheus)  # promtool: checks ops/prometheus and ops/grafana
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "cannot install ${need[*]}: run as root or install them with apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
