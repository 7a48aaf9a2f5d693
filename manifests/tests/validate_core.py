"""Validate the core-kind objects of rendered manifests with kubernetes-validate.

    python validate_core.py --kubernetes-version 1.32.0 FILE.yaml ...

Strict mode: unknown fields are errors. Objects of custom-resource groups
(a dotted group outside *.k8s.io) are left to validate-crds.mjs; a core-looking
kind with no schema in the chosen Kubernetes version is an error, not a
warning. Exit status 1 when any object fails.
"""
import argparse
import sys

import kubernetes_validate
import yaml


def is_custom(api_version):
    group = api_version.split("/")[0] if "/" in api_version else ""
    return "." in group and not group.endswith(".k8s.io")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    checked = failed = 0
    for path in args.files:
        with open(path, encoding="utf-8") as handle:
            docs = [d for d in yaml.safe_load_all(handle) if d]
        for doc in docs:
            if is_custom(doc.get("apiVersion", "")):
                continue
            checked += 1
            ident = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, args.kubernetes_version, strict=True)
                print(f"ok   {ident}")
            except kubernetes_validate.ValidationError as err:
                failed += 1
                where = ".".join(str(p) for p in err.path)
                print(f"FAIL {ident}: {where}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError as err:
                failed += 1
                print(f"FAIL {ident}: no schema for {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {args.kubernetes_version}")
    print(f"core kinds (Kubernetes {args.kubernetes_version}, strict): {checked} checked, {failed} failed")
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
