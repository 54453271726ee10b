"""The dbt command line of this repository's project (dbt_modeling/), with its target/ and logs/
under a work directory of the caller, so the clone stays clean."""
import os
import sys

PROJECT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "dbt_modeling"))


def dbt_command(verb: str, target: str, workdir: str, *extra: str) -> list:
    """`dbt <verb> --target <target> ...` from this venv, on dbt_modeling/, writing under workdir."""
    return [
        os.path.join(os.path.dirname(sys.executable), "dbt"), verb, *extra,
        "--target", target, "--profiles-dir", PROJECT, "--project-dir", PROJECT,
        "--target-path", os.path.join(workdir, "target"), "--log-path", os.path.join(workdir, "logs"),
    ]
