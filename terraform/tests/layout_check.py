"""dev and prod state cannot be confused: the layout of terraform/envs.

    python layout_check.py TERRAFORM_DIR            check the folder
    python layout_check.py --self-test TERRAFORM_DIR  and prove each rule
                                                       rejects a broken copy

Rules:
  - every folder of envs/ is a root of its own whose backend block names the
    state key <folder>/terraform.tfstate (init cannot be pointed at another
    environment's state by a backend file), with a fixed region and encryption
    and S3 lock files;
  - its local `environment` is the folder's name and is what it passes to the
    environment module (the only caller of modules/environment);
  - it carries the guard terraform_data.environment_guard, replaced by a change
    of environment and protected by prevent_destroy, so that a plan of one
    environment against the other's state fails;
  - no backend file (*.tfbackend) anywhere sets a `key`;
  - the environment roots publish exactly the module's outputs, with identical
    outputs.tf files.
Exit status 1 when a rule is broken (self-test: when a broken copy passes).
"""
import pathlib
import re
import shutil
import sys
import tempfile

ENVIRONMENTS = ("dev", "prod")


def block(text, header):
    """The body of the first block whose header matches, braces balanced."""
    m = re.search(header, text, re.M)
    if not m:
        return None
    i = text.index("{", m.end() - 1)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


def attr(body, name):
    m = re.search(rf'^\s*{name}\s*=\s*"?([^"\n]*?)"?\s*$', body or "", re.M)
    return m.group(1).strip() if m else None


def check(tf):
    tf = pathlib.Path(tf)
    errors = []
    envs = tf / "envs"
    roots = sorted(p for p in envs.iterdir() if p.is_dir()) if envs.is_dir() else []
    if sorted(p.name for p in roots) != sorted(ENVIRONMENTS):
        errors.append(f"envs/ holds {[p.name for p in roots]}, want one root per environment {list(ENVIRONMENTS)}")
    module_outputs = sorted(re.findall(r'^output "(\w+)"', (tf / "modules/environment/outputs.tf").read_text(), re.M))
    outputs = {}
    for root in roots:
        name = root.name
        text = "\n".join(p.read_text() for p in sorted(root.glob("*.tf")))
        backend = block(text, r'backend\s+"s3"\s*\{')
        if backend is None:
            errors.append(f"envs/{name}: no backend \"s3\" block")
        else:
            if attr(backend, "key") != f"{name}/terraform.tfstate":
                errors.append(f"envs/{name}: backend key is {attr(backend, 'key')!r}, want '{name}/terraform.tfstate' "
                              "written in the block (not left to -backend-config)")
            for a, want in (("encrypt", "true"), ("use_lockfile", "true")):
                if attr(backend, a) != want:
                    errors.append(f"envs/{name}: backend {a} must be {want}")
            if not attr(backend, "region"):
                errors.append(f"envs/{name}: backend region must be written in the block")
        locals_ = block(text, r'^locals\s*\{')
        if attr(locals_, "environment") != name:
            errors.append(f"envs/{name}: local.environment is {attr(locals_, 'environment')!r}, want {name!r}")
        module = block(text, r'module\s+"environment"\s*\{')
        if module is None or attr(module, "source") != "../../modules/environment":
            errors.append(f"envs/{name}: must call ../../modules/environment as module \"environment\"")
        elif attr(module, "environment") != "local.environment":
            errors.append(f"envs/{name}: the module's environment must be local.environment")
        guard = block(text, r'resource\s+"terraform_data"\s+"environment_guard"\s*\{')
        if guard is None or attr(guard, "triggers_replace") != "local.environment":
            errors.append(f"envs/{name}: no terraform_data.environment_guard replaced by a change of local.environment")
        elif not re.search(r"prevent_destroy\s*=\s*true", block(guard, r"lifecycle\s*\{") or ""):
            errors.append(f"envs/{name}: the environment guard needs lifecycle {{ prevent_destroy = true }}")
        out = root / "outputs.tf"
        outputs[name] = out.read_text() if out.exists() else ""
        got = sorted(re.findall(r'^output "(\w+)"', outputs[name], re.M))
        if got != module_outputs:
            errors.append(f"envs/{name}: outputs {got} are not the module's {module_outputs}")
    if len(set(outputs.values())) > 1:
        errors.append("envs/*/outputs.tf differ: every environment publishes the same outputs")
    for f in sorted(tf.rglob("*.tfbackend")):
        if re.search(r"^\s*key\s*=", f.read_text(), re.M):
            errors.append(f"{f.relative_to(tf)} sets a state key: the key belongs in each root's backend block")
    for f in sorted(tf.rglob("*.tf")):
        rel = f.relative_to(tf)
        if rel.parts[0] != "envs" and re.search(r'source\s*=\s*"[./]*modules/environment"', f.read_text()):
            errors.append(f"{rel} calls modules/environment: only the roots in envs/ may")
    return errors


def mutate(tf, rel, old, new):
    p = pathlib.Path(tf) / rel
    text = p.read_text()
    if old not in text:
        raise SystemExit(f"self-test: {old!r} not found in {rel}")
    p.write_text(text.replace(old, new, 1))


MUTATIONS = [
    ("dev's root writes prod's state", "envs/dev/main.tf", 'key          = "dev/terraform.tfstate"', 'key          = "prod/terraform.tfstate"'),
    ("state key left to -backend-config", "envs/prod/main.tf", '    key          = "prod/terraform.tfstate"\n', ""),
    ("prod's root deploys dev", "envs/prod/main.tf", 'environment = "prod"', 'environment = "dev"'),
    ("no environment guard", "envs/dev/main.tf", 'resource "terraform_data" "environment_guard"', 'resource "terraform_data" "unrelated"'),
    ("guard that can be replaced", "envs/prod/main.tf", "prevent_destroy = true", "prevent_destroy = false"),
    ("outputs drifting apart", "envs/prod/outputs.tf", 'output "bucket_name_prefix"', 'output "bucket_prefix"'),
    ("state lock files off", "envs/dev/main.tf", "use_lockfile = true", "use_lockfile = false"),
]


def self_test(tf):
    failures = 0
    for desc, rel, old, new in MUTATIONS + [("a backend file with a key", None, None, None)]:
        with tempfile.TemporaryDirectory() as tmp:
            copy = pathlib.Path(tmp) / "terraform"
            shutil.copytree(tf, copy, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
            if rel:
                mutate(copy, rel, old, new)
            else:
                (copy / "envs/dev/dev.s3.tfbackend").write_text('key = "prod/terraform.tfstate"\n')
            errors = check(copy)
            if errors:
                print(f"ok   rejects {desc}: {errors[0]}")
            else:
                failures += 1
                print(f"FAIL {desc}: not rejected")
    return failures


def main():
    args = sys.argv[1:]
    selftest = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    tf = args[0] if args else "terraform"
    errors = check(tf)
    for e in errors:
        print(f"FAIL {e}")
    if not errors:
        print(f"ok   envs/{{{','.join(ENVIRONMENTS)}}}: one root each, state key in the backend block, "
              "guard against the other's state, identical outputs")
    failures = len(errors) + (self_test(tf) if selftest else 0)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
