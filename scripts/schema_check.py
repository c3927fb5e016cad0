#!/usr/bin/env python3
"""Checks every JSON Schema under docs/schemas: it is a valid Draft 2020-12 schema, and each of
its `examples` validates against it. The Rust tests check the other direction: every example is
accepted by the connector's own parser, so the documented shape and the code agree."""
import json
import pathlib
import sys

import jsonschema


def main() -> int:
    status = 0
    for path in sorted(pathlib.Path("docs/schemas").glob("*.schema.json")):
        schema = json.loads(path.read_text())
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            print(f"{path}: not a valid schema: {e.message}")
            status = 1
            continue
        validator = jsonschema.Draft202012Validator(schema)
        for i, example in enumerate(schema.get("examples", [])):
            for error in validator.iter_errors(example):
                print(f"{path}: examples[{i}] does not validate: {error.message}")
                status = 1
        if status == 0:
            print(f"deploy-check: {path} is a valid schema and its examples validate")
    return status


if __name__ == "__main__":
    sys.exit(main())
