#!/usr/bin/env bash
# Compile cost of #[service_client]: `cargo check` of a crate with a 100-method trait, against
# the same crate with the 100 methods written by hand over `comms::Executor`.
#
#   bash bench/compile_cost.sh [methods]
#
# Both crates are generated under target/compile-cost/, share one target directory (so the
# dependencies are built once, untimed), and each is checked 5 times after touching its source;
# the median is reported.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
methods=${1:-100}
work="$root/target/compile-cost"
rm -rf "$work/generated" "$work/handwritten"
mkdir -p "$work/generated/src" "$work/handwritten/src"

manifest() {
  cat <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
comms = { path = "$root/comms" }
serde = { version = "1", features = ["derive"] }

[workspace]
TOML
}
manifest cost-generated > "$work/generated/Cargo.toml"
manifest cost-handwritten > "$work/handwritten/Cargo.toml"

{
  echo 'use comms::{Error, service_client};'
  echo '#[derive(serde::Deserialize)] pub struct Item { pub id: u64 }'
  echo '#[derive(serde::Serialize)] pub struct NewItem { pub name: String }'
  echo '#[service_client(base_url = "http://items:8080", service_id = "cost", secret_env = "S")]'
  echo 'pub trait Items {'
  for i in $(seq 1 "$methods"); do
    case $((i % 4)) in
      0) echo "    #[get(\"/items$i/<id>\")] async fn m$i(&self, id: u64, #[query] page: Option<u32>) -> Result<Item, Error>;" ;;
      1) echo "    #[post(\"/items$i\", idempotent)] async fn m$i(&self, #[body] item: &NewItem) -> Result<Item, Error>;" ;;
      2) echo "    #[put(\"/items$i/<id>\")] async fn m$i(&self, id: u64, #[body] item: &NewItem, #[header(\"X-Req\")] req: &str) -> Result<(), Error>;" ;;
      3) echo "    #[delete(\"/items$i/<id>\")] async fn m$i(&self, id: u64) -> Result<(), Error>;" ;;
    esac
  done
  echo '}'
} > "$work/generated/src/lib.rs"

{
  echo 'use comms::{Call, Error, Executor};'
  echo '#[derive(serde::Deserialize)] pub struct Item { pub id: u64 }'
  echo '#[derive(serde::Serialize)] pub struct NewItem { pub name: String }'
  echo 'pub trait Items {'
  for i in $(seq 1 "$methods"); do
    case $((i % 4)) in
      0) echo "    fn m$i(&self, id: u64, page: Option<u32>) -> impl Future<Output = Result<Item, Error>> + Send;" ;;
      1) echo "    fn m$i(&self, item: &NewItem) -> impl Future<Output = Result<Item, Error>> + Send;" ;;
      2) echo "    fn m$i(&self, id: u64, item: &NewItem, req: &str) -> impl Future<Output = Result<(), Error>> + Send;" ;;
      3) echo "    fn m$i(&self, id: u64) -> impl Future<Output = Result<(), Error>> + Send;" ;;
    esac
  done
  echo '}'
  echo '#[derive(Clone, Debug)] pub struct ItemsClient { executor: Executor }'
  echo 'impl ItemsClient { pub fn new(executor: Executor) -> Self { ItemsClient { executor } } }'
  echo 'impl Items for ItemsClient {'
  for i in $(seq 1 "$methods"); do
    case $((i % 4)) in
      0) echo "    async fn m$i(&self, id: u64, page: Option<u32>) -> Result<Item, Error> { let mut c = Call::get(\"/items$i\").segment(id); if let Some(p) = page { c = c.query(\"page\", p); } self.executor.execute(c).await?.json() }" ;;
      1) echo "    async fn m$i(&self, item: &NewItem) -> Result<Item, Error> { self.executor.execute(Call::post(\"/items$i\").json(item).idempotent(true)).await?.json() }" ;;
      2) echo "    async fn m$i(&self, id: u64, item: &NewItem, req: &str) -> Result<(), Error> { self.executor.execute(Call::put(\"/items$i\").segment(id).json(item).header(\"X-Req\", req)).await?; Ok(()) }" ;;
      3) echo "    async fn m$i(&self, id: u64) -> Result<(), Error> { self.executor.execute(Call::delete(\"/items$i\").segment(id)).await?; Ok(()) }" ;;
    esac
  done
  echo '}'
} > "$work/handwritten/src/lib.rs"

export CARGO_TARGET_DIR="$work/target"
for crate in generated handwritten; do
  (cd "$work/$crate" && cargo check -q 2>/dev/null || cargo check)
done

median_check() {
  local dir=$1 times=()
  for _ in 1 2 3 4 5; do
    touch "$dir/src/lib.rs"
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && cargo check -q)
    end=$(date +%s.%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}

gen=$(median_check "$work/generated")
hand=$(median_check "$work/handwritten")
awk -v n="$methods" -v g="$gen" -v h="$hand" 'BEGIN {
  printf "cargo check, %s methods: generated %.2f s, hand-written %.2f s, the macro adds %.2f s\n", n, g, h, g - h
}'
