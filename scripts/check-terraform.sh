#!/usr/bin/env bash
# Terraform check: everything under terraform/, offline.
#
#   1. terraform fmt -check; init -backend=false and validate of every root
#      (bootstrap, shared, envs/dev, envs/prod) with the committed lock files;
#      the environments' layout (tests/layout_check.py, with its self-test).
#   2. terraform test (mocked provider) in every module and root that has tests.
#   3. checkov on terraform/ (every skip is inline, with its reason).
#      Steps 1 (after fmt) to 3 run in the background beside step 4.
#   4. An emulator run: moto on 127.0.0.1, apply bootstrap (local state), then
#      shared, dev and prod with the S3 backend and lock files in the state
#      bucket; a held lock must block a plan; prod's root planned against
#      dev's state must fail on the environment guard; a SecureString value
#      set out of band must not reach the state after a refresh;
#      moto_checks.py compares what exists with the outputs.
#   5. The pod role policies against the AWS calls in aux/src
#      (policy_matches_code.py, with its self-test).
#   6. The aux-worker binary against the same emulator reads the dev
#      parameters Terraform created, over HTTP, and with the dev overlay's
#      S3_BUCKET_PREFIX lists dev's bucket only (no state bucket, no account id).
#
# The AWS provider comes from a local filesystem mirror when the machine has
# one (a folder holding registry.terraform.io/hashicorp/aws/...), otherwise
# from the public registry; TF_PROVIDER_MIRROR names the mirror explicitly.
# Tools: run python checkov terraform
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TFDIR="$ROOT/terraform"
WORK="$ROOT/.run/terraform"
rm -rf "$WORK"
mkdir -p "$WORK/logs"

if [ -z "${TOOLS_DIR:-}" ]; then
  # shellcheck disable=SC2046  # one word per group
  scripts/tools.sh $(scripts/tools.sh for-checks terraform)
  eval "$(scripts/tools.sh env)"
fi
PY="$TOOLS_DIR/venv/bin/python"

START=$(date +%s)
log() { printf '[terraform %3ds] %s\n' "$(($(date +%s) - START))" "$*"; }
die() { printf '[terraform] FAILED: %s\n' "$*" >&2; exit 1; }

# Runs a command with its output in a log file; on failure prints the tail.
run_logged() { # run_logged NAME CMD...
  local name=$1; shift
  if ! "$@" >"$WORK/logs/$name.log" 2>&1; then
    tail -n 40 "$WORK/logs/$name.log" | sed "s/^/    [$name] /" >&2
    die "$name (log: .run/terraform/logs/$name.log)"
  fi
}

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    # Background jobs here are shell functions: stop their children first.
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() { python3 "$ROOT/scripts/ports.py"; }  # below the ephemeral range: see ports.py

wait_http() { # wait_http URL SECONDS
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

command -v terraform >/dev/null || die "terraform is not on PATH (1.11 or later is required)"

# --- provider installation ---------------------------------------------------
find_mirror() {
  local bin
  if [ -n "${TF_PROVIDER_MIRROR:-}" ]; then
    echo "$TF_PROVIDER_MIRROR"
    return
  fi
  local pattern='*/registry.terraform.io/hashicorp/aws/*/terraform-provider-aws_*'
  # The usual places first, then the whole file system.
  bin=$(find /opt /usr/local/share /usr/share "$HOME/.terraform.d" -maxdepth 7 -path "$pattern" -type f -print 2>/dev/null | head -n 1)
  [ -n "$bin" ] || bin=$(find / -xdev \( -path /proc -o -path /sys -o -name .git -o -name target -o -name node_modules \) -prune \
    -o -path "$pattern" -type f -print 2>/dev/null | head -n 1)
  # <mirror>/registry.terraform.io/hashicorp/aws/VERSION/OS_ARCH/terraform-provider-aws_*
  [ -n "$bin" ] && dirname "$(dirname "$(dirname "$(dirname "$(dirname "$(dirname "$bin")")")")")"
}

export TF_CLI_CONFIG_FILE="$WORK/cli.tfrc"
export TF_IN_AUTOMATION=1 TF_INPUT=0
MIRROR=$(find_mirror || true)
if [ -n "$MIRROR" ] && [ -d "$MIRROR/registry.terraform.io" ]; then
  log "provider mirror: $MIRROR (hashicorp/aws $(find "$MIRROR/registry.terraform.io/hashicorp/aws" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null))"
  cat >"$TF_CLI_CONFIG_FILE" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
EOF
else
  log "NOTE: no local provider mirror found; the AWS provider is installed from the public registry (needs network)."
  mkdir -p "$TOOLS_DIR/terraform-plugin-cache"
  printf 'plugin_cache_dir = "%s"\n' "$TOOLS_DIR/terraform-plugin-cache" >"$TF_CLI_CONFIG_FILE"
fi

log "$(terraform version | head -n 1)"

tf() { # tf DATA_NAME DIR ARGS... : terraform with a per-run data dir under .run
  local data=$1 dir=$2; shift 2
  TF_DATA_DIR="$WORK/data/$data" terraform -chdir="$dir" "$@"
}

# --- the worker build starts early; it runs beside the Terraform steps --------
[ -f aux/Cargo.toml ] || die "aux/Cargo.toml not found: the worker crate (package aux-worker) is needed for the end-to-end step"
# With edge, as every check builds them (one feature set: a cold run compiles
# each dependency once).
log "building aux-worker in the background (cargo build -p aux-worker -p edge)"
cargo build --locked -p aux-worker -p edge >"$WORK/logs/cargo-build.log" 2>&1 &
BUILD_PID=$!
PIDS+=("$BUILD_PID")

# --- 1 to 3 run in the background while the emulator applies ------------------
log "terraform fmt -check -recursive terraform/"
terraform fmt -check -recursive -diff "$TFDIR" || die "terraform fmt: run 'terraform fmt -recursive terraform'"

log "environments layout: tests/layout_check.py (and its self-test)"
"$PY" terraform/tests/layout_check.py --self-test "$TFDIR" | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || die "terraform/envs layout"

ROOTS=(bootstrap shared envs/dev envs/prod)
MODULES=(modules/s3 modules/ssm modules/ecr modules/iam modules/environment)
TESTED=("${MODULES[@]}" bootstrap)
static_checks() {
  local d
  for d in "${ROOTS[@]}" "${MODULES[@]}"; do
    [ -f "$TFDIR/$d/.terraform.lock.hcl" ] || { echo "$d: .terraform.lock.hcl is missing (run terraform init there and commit it)"; return 1; }
    tf "${d//\//-}" "$TFDIR/$d" init -backend=false -lockfile=readonly -no-color >/dev/null || { echo "init failed in $d"; return 1; }
  done
  for d in "${ROOTS[@]}"; do
    echo "validate $d"
    tf "${d//\//-}" "$TFDIR/$d" validate -no-color || { echo "validate failed in $d"; return 1; }
  done
  for d in "${TESTED[@]}"; do
    echo "test $d"
    tf "${d//\//-}" "$TFDIR/$d" test -no-color || { echo "terraform test failed in $d"; return 1; }
  done
  checkov -d "$TFDIR" --framework terraform --skip-download --quiet --compact
}
static_checks >"$WORK/logs/static.log" 2>&1 &
STATIC_PID=$!
PIDS+=("$STATIC_PID")
log "init and validate (${ROOTS[*]}), terraform test (${TESTED[*]}) and checkov started in the background"

# --- 4. apply against moto --------------------------------------------------------
PORT=$(free_port)
ENDPOINT="http://127.0.0.1:$PORT"
"$TOOLS_DIR/venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/logs/moto.log" 2>&1 &
PIDS+=("$!")
wait_http "$ENDPOINT/moto-api/" 30 || die "moto_server did not answer on $ENDPOINT"
log "moto on $ENDPOINT"

# A copy of terraform/ whose roots get a test-only provider override.
MOTO_TF="$WORK/moto/terraform"
mkdir -p "$WORK/moto"
cp -r "$TFDIR" "$MOTO_TF"
find "$MOTO_TF" -name .terraform -type d -prune -exec rm -rf {} +
for d in "${ROOTS[@]}"; do
  cat >"$MOTO_TF/$d/moto_override.tf" <<EOF
# Emulator run only: every AWS endpoint on the local moto server.
provider "aws" {
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true

  endpoints {
    ecr = "$ENDPOINT"
    eks = "$ENDPOINT"
    iam = "$ENDPOINT"
    kms = "$ENDPOINT"
    s3  = "$ENDPOINT"
    ssm = "$ENDPOINT"
    sts = "$ENDPOINT"
  }
}
EOF
done

log "apply bootstrap (state bucket)"
run_logged moto-bootstrap-init tf moto-bootstrap "$MOTO_TF/bootstrap" init -lockfile=readonly -no-color
run_logged moto-bootstrap-apply tf moto-bootstrap "$MOTO_TF/bootstrap" apply -auto-approve -no-color
STATE_BUCKET=$(tf moto-bootstrap "$MOTO_TF/bootstrap" output -raw state_bucket)
log "state bucket $STATE_BUCKET:"
"$PY" terraform/tests/moto_checks.py state-bucket --endpoint "$ENDPOINT" --bucket "$STATE_BUCKET" || die "state bucket checks"
"$PY" terraform/tests/moto_checks.py drop-tls-policy --endpoint "$ENDPOINT" --bucket "$STATE_BUCKET"

cat >"$WORK/moto.s3.tfbackend" <<EOF
bucket                      = "$STATE_BUCKET"
access_key                  = "test"
secret_key                  = "test"
use_path_style              = true
skip_credentials_validation = true
skip_requesting_account_id  = true
skip_metadata_api_check     = true
skip_region_validation      = true
endpoints = {
  s3  = "$ENDPOINT"
  sts = "$ENDPOINT"
  iam = "$ENDPOINT"
}
EOF

log "apply shared (registry, GitHub OIDC provider) with the S3 backend"
run_logged moto-shared-init tf moto-shared "$MOTO_TF/shared" init -lockfile=readonly -no-color -backend-config="$WORK/moto.s3.tfbackend"
run_logged moto-shared-apply tf moto-shared "$MOTO_TF/shared" apply -auto-approve -no-color
tf moto-shared "$MOTO_TF/shared" output -json >"$WORK/out-shared.json"

apply_env() { # apply_env ENV: the environment's own root, its own state key
  tf "moto-$1" "$MOTO_TF/envs/$1" init -lockfile=readonly -no-color -backend-config="$WORK/moto.s3.tfbackend" &&
    tf "moto-$1" "$MOTO_TF/envs/$1" apply -auto-approve -no-color &&
    tf "moto-$1" "$MOTO_TF/envs/$1" output -json >"$WORK/out-$1.json"
}
log "apply dev and prod (one state each) in parallel"
apply_env dev >"$WORK/logs/moto-dev.log" 2>&1 &
DEV_PID=$!
PIDS+=("$DEV_PID")
apply_env prod >"$WORK/logs/moto-prod.log" 2>&1 &
PROD_PID=$!
PIDS+=("$PROD_PID")

# Meanwhile: a lock held in the bucket must stop a plan of shared.
LOCK_KEY="shared/terraform.tfstate.tflock"
"$PY" - "$ENDPOINT" "$STATE_BUCKET" "$LOCK_KEY" put <<'EOF'
import json, sys, boto3
endpoint, bucket, key, op = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"ID": "held-by-check", "Operation": "OperationTypeApply", "Who": "check-terraform", "Version": "1.11.0", "Created": "2026-01-01T00:00:00Z", "Path": f"{bucket}/{key}"}))
EOF
if tf moto-shared "$MOTO_TF/shared" plan -lock-timeout=0s -refresh=false -no-color >"$WORK/logs/moto-lock.log" 2>&1; then
  die "a plan of shared ran although its state lock was held (use_lockfile not honoured)"
fi
grep -q "Error acquiring the state lock" "$WORK/logs/moto-lock.log" || { tail -n 20 "$WORK/logs/moto-lock.log"; die "the held-lock plan failed for another reason"; }
"$PY" -c 'import sys, boto3; boto3.client("s3", endpoint_url=sys.argv[1], region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test").delete_object(Bucket=sys.argv[2], Key=sys.argv[3])' \
  "$ENDPOINT" "$STATE_BUCKET" "$LOCK_KEY"
log "state locking: a held lock file blocks a plan (Error acquiring the state lock): ok"

for e in dev:$DEV_PID prod:$PROD_PID; do
  if ! wait "${e#*:}"; then
    tail -n 40 "$WORK/logs/moto-${e%%:*}.log" | sed "s/^/    [moto-${e%%:*}] /" >&2
    die "apply of ${e%%:*} against moto"
  fi
  log "apply ${e%%:*}: $(grep -o 'Resources: [0-9]* added' "$WORK/logs/moto-${e%%:*}.log" || echo 'applied')"
done

# dev and prod cannot be confused: prod's configuration initialised onto
# dev's state (an explicit -backend-config=key override) must not plan.
cross_env() {
  tf moto-cross "$MOTO_TF/envs/prod" init -lockfile=readonly -no-color -backend-config="$WORK/moto.s3.tfbackend" \
    -backend-config="key=dev/terraform.tfstate" >/dev/null &&
    ! tf moto-cross "$MOTO_TF/envs/prod" plan -lock=false -no-color -input=false &&
    echo "expected failure above"
}
cross_env >"$WORK/logs/moto-cross.log" 2>&1 &
CROSS_PID=$!
PIDS+=("$CROSS_PID")

# A SecureString value set out of band stays out of the state, and Terraform
# does not revert it: refresh dev and read the state object itself.
SECRET_VALUE="out-of-band-$(date +%s)-$RANDOM"
"$PY" - "$ENDPOINT" put "$SECRET_VALUE" <<'EOF'
import sys, boto3
endpoint, _, value = sys.argv[1:]
ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
ssm.put_parameter(Name="/kantox-challenge/dev/api-token", Type="SecureString", Value=value, Overwrite=True)
EOF
# Beside the next steps (the worker only reads the parameter).
secret_check() {
  tf moto-dev "$MOTO_TF/envs/dev" apply -refresh-only -auto-approve -no-color >"$WORK/logs/moto-dev-refresh.log" 2>&1 ||
    { tail -n 30 "$WORK/logs/moto-dev-refresh.log"; echo "refresh of dev failed"; return 1; }
  grep -q 'aws_ssm_parameter.secure\["api-token"\]: Refreshing state' "$WORK/logs/moto-dev-refresh.log" ||
    { echo "the refresh did not read the SecureString parameter"; return 1; }
  # With the refreshed state (the parameter's new version recorded, no value:
  # Terraform keeps no copy to compare), a plan changes nothing: Terraform
  # does not revert the value.
  tf moto-dev "$MOTO_TF/envs/dev" plan -refresh=false -detailed-exitcode -no-color >"$WORK/logs/moto-dev-replan.log" 2>&1 ||
    { tail -n 30 "$WORK/logs/moto-dev-replan.log"; echo "after the out-of-band SecureString value, a plan of dev is not clean"; return 1; }
  echo "  ok   after a refresh, a plan of dev changes nothing (Terraform does not revert the value)"
  "$PY" - "$ENDPOINT" "$STATE_BUCKET" "$SECRET_VALUE" <<'EOF'
import sys, boto3
endpoint, bucket, secret = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
state = s3.get_object(Bucket=bucket, Key="dev/terraform.tfstate")["Body"].read().decode()
leaks = [v for v in (secret, "placeholder-set-out-of-band") if v in state]
print(f"  {'FAIL' if leaks else 'ok  '} the dev state ({len(state)} bytes, refreshed) holds neither the out-of-band value nor the write-only placeholder{': ' + str(leaks) if leaks else ''}")
sys.exit(1 if leaks else 0)
EOF
}
secret_check >"$WORK/logs/secret-check.log" 2>&1 &
SECRET_PID=$!
PIDS+=("$SECRET_PID")

log "what exists in the emulator, against the outputs:"
"$PY" terraform/tests/moto_checks.py deployed --endpoint "$ENDPOINT" --state-bucket "$STATE_BUCKET" \
  --shared "$WORK/out-shared.json" --env "dev=$WORK/out-dev.json" --env "prod=$WORK/out-prod.json" ||
  die "emulator state differs from the configuration"

if ! wait "$CROSS_PID" || ! grep -q "Instance cannot be destroyed" "$WORK/logs/moto-cross.log" ||
  ! grep -q "environment_guard" "$WORK/logs/moto-cross.log"; then
  tail -n 30 "$WORK/logs/moto-cross.log" | sed 's/^/    [moto-cross] /' >&2
  die "prod's configuration planned against dev's state was not stopped by the environment guard"
fi
log "prod's root planned against dev's state (key override): refused by terraform_data.environment_guard (prevent_destroy): ok"

# --- 1 to 3: results ---------------------------------------------------------
if ! wait "$STATIC_PID"; then
  tail -n 60 "$WORK/logs/static.log" | sed 's/^/    [static] /' >&2
  die "init, validate, terraform test or checkov (log: .run/terraform/logs/static.log)"
fi
grep -E '^(validate |test |Success!|Passed checks|  run )' "$WORK/logs/static.log" | sed 's/^/  /'
log "init, validate, terraform test and checkov: ok"

# --- 5. pod role policy against the worker's AWS calls ----------------------------
out() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["value"])' "$WORK/out-$1.json" "$2"; }
for e in dev prod; do out "$e" auxiliary_service_policy >"$WORK/policy-$e.json"; done
bool() { [ "$(out "$1" expose_secure_parameters)" = True ] && echo true || echo false; }

if ! wait "$BUILD_PID"; then
  tail -n 40 "$WORK/logs/cargo-build.log" | sed 's/^/    [cargo] /' >&2
  die "cargo build -p aux-worker -p edge"
fi
log "aux-worker built"

log "pod role policies against the AWS calls in aux/src:"
"$PY" terraform/tests/policy_matches_code.py --source-dir aux/src --workspace "$ROOT" --self-test \
  --policy "dev=$WORK/policy-dev.json:$(out dev parameter_prefix):$(bool dev)" \
  --policy "prod=$WORK/policy-prod.json:$(out prod parameter_prefix):$(bool prod)" ||
  die "the pod role policy does not match the worker's AWS calls"

if ! wait "$SECRET_PID"; then
  sed 's/^/    [secret] /' "$WORK/logs/secret-check.log" >&2
  die "a SecureString value set out of band: reverted by Terraform or present in the state"
fi
cat "$WORK/logs/secret-check.log"
log "a SecureString set out of band stays out of the state and is not reverted: ok"

# --- 6. the worker reads what Terraform created --------------------------------
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' || echo "$ROOT/target")
WORKER="$TARGET_DIR/debug/aux-worker"
[ -x "$WORKER" ] || die "$WORKER not found after the build"
LISTEN_PORT=$(free_port)
ADMIN_PORT=$(free_port)
PREFIX=$(out dev parameter_prefix)
EXPOSE=$(bool dev)
# The bucket filter the overlays give the worker is the prefix Terraform
# names the environment's buckets with.
overlay_bucket_prefix() {
  kubectl kustomize "manifests/overlays/$1" | "$PY" -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("auxiliary-service-config"):
        print(d["data"].get("S3_BUCKET_PREFIX", ""))'
}
for e in dev prod; do
  [ "$(overlay_bucket_prefix "$e")" = "$(out "$e" bucket_name_prefix)" ] ||
    die "manifests/overlays/$e S3_BUCKET_PREFIX '$(overlay_bucket_prefix "$e")' is not Terraform's bucket_name_prefix '$(out "$e" bucket_name_prefix)'"
done
BUCKET_FILTER=$(overlay_bucket_prefix dev)
log "S3_BUCKET_PREFIX of the dev and prod overlays = Terraform's bucket_name_prefix ($BUCKET_FILTER, $(out prod bucket_name_prefix))"
env PARAMETER_PREFIX="$PREFIX" S3_BUCKET_PREFIX="$BUCKET_FILTER" LISTEN_ADDR="127.0.0.1:$LISTEN_PORT" ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" \
  AWS_ENDPOINT_URL="$ENDPOINT" AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  EXPOSE_SECURE_PARAMETERS="$EXPOSE" SERVICE_VERSION=terraform-check LOG_FORMAT=text \
  "$WORKER" >"$WORK/logs/worker.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$ADMIN_PORT/readyz" 30 || { tail -n 20 "$WORK/logs/worker.log" >&2; die "aux-worker not ready"; }
log "aux-worker on 127.0.0.1:$LISTEN_PORT (PARAMETER_PREFIX=$PREFIX, EXPOSE_SECURE_PARAMETERS=$EXPOSE)"

API="http://127.0.0.1:$LISTEN_PORT"
curl -fsS "$API/parameters" >"$WORK/worker-parameters.json" || die "GET /parameters"
curl -fsS "$API/parameter/param1" >"$WORK/worker-param1.json" || die "GET /parameter/param1"
SECURE_STATUS=$(curl -sS -o "$WORK/worker-secure.json" -w '%{http_code}' "$API/parameter/api-token") || die "GET /parameter/api-token"
curl -fsS "$API/s3-buckets" >"$WORK/worker-buckets.json" || die "GET /s3-buckets"
ACCOUNT_ID=$("$PY" -c 'import sys, boto3; print(boto3.client("sts", endpoint_url=sys.argv[1], region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test").get_caller_identity()["Account"])' "$ENDPOINT")
tf moto-dev "$MOTO_TF/envs/dev" show -json >"$WORK/state-dev.json"
"$PY" - "$WORK" "$SECURE_STATUS" "$SECRET_VALUE" "$STATE_BUCKET" "$ACCOUNT_ID" <<'EOF' || die "the worker does not return what Terraform created"
import json, sys
work, secure_status, secret, state_bucket, account = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
load = lambda name: json.load(open(f"{work}/{name}"))
outputs = {k: v["value"] for k, v in load("out-dev.json").items()}
state = load("state-dev.json")

def resources(module):
    for r in module.get("resources", []):
        yield r
    for child in module.get("child_modules", []):
        yield from resources(child)

params = {r["values"]["name"]: r["values"] for r in resources(state["values"]["root_module"])
          if r["type"] == "aws_ssm_parameter"}
failures = []

def expect(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)

listed = load("worker-parameters.json")
expect(listed.get("parameters") == outputs["parameter_names"],
       f"GET /parameters lists exactly the parameters Terraform created: {listed.get('parameters')}")
expect(listed.get("auxiliary_service_version") == "terraform-check", "GET /parameters carries the service version")
p1 = load("worker-param1.json")
name = f"{outputs['parameter_prefix']}/param1"
expect(p1.get("name") == name and p1.get("type") == "String" and p1.get("version") == 1,
       f"GET /parameter/param1 names {name}, type String, version 1")
expect(p1.get("value") == params[name]["value"], f"GET /parameter/param1 returns the value in the Terraform state ({params[name]['value']!r})")
secure = load("worker-secure.json")
if outputs["expose_secure_parameters"]:
    expect(secure_status == 200 and secure.get("type") == "SecureString" and secure.get("value") == "placeholder-set-out-of-band",
           "GET /parameter/api-token decrypts the SecureString written by Terraform (write-only placeholder)")
else:
    expect(secure_status == 403 and "placeholder" not in json.dumps(secure) and secret not in json.dumps(secure),
           f"GET /parameter/api-token is refused (HTTP {secure_status}) without revealing the SecureString value")
buckets = load("worker-buckets.json")
prod = {k: v["value"] for k, v in load("out-prod.json").items()}
expect(buckets.get("buckets") == [outputs["bucket_name"]],
       f"GET /s3-buckets with S3_BUCKET_PREFIX={outputs['bucket_name_prefix']} lists dev's bucket only: {buckets.get('buckets')}")
body = json.dumps(buckets)
expect(state_bucket not in body and prod["bucket_name"] not in body and account not in body,
       f"the answer names neither the state bucket, nor prod's bucket, nor the account id {account}")
expect(outputs["bucket_name"].startswith(outputs["bucket_name_prefix"]) and len(outputs["bucket_name"]) > len(outputs["bucket_name_prefix"]) + 8
       and account not in outputs["bucket_name"],
       f"the application bucket {outputs['bucket_name']} has a generated unique suffix, not the account id")
sys.exit(1 if failures else 0)
EOF

log "all Terraform checks passed"
