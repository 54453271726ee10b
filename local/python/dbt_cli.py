"""The dbt command line of this repository's projects (dbt_modeling/ by default, or a pipeline's dbt project),
with its target/ and logs/ under a work directory of the caller, so the clone stays clean."""
import os
import sys

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROJECT = os.path.join(REPO, "dbt_modeling")


def dbt_command(verb: str, target: str, workdir: str, *extra: str, project: str = PROJECT) -> list:
    """`dbt <verb> --target <target> ...` from this venv, on `project` (its profiles.yml too), writing under
    workdir."""
    return [
        os.path.join(os.path.dirname(sys.executable), "dbt"), verb, *extra,
        "--target", target, "--profiles-dir", project, "--project-dir", project,
        "--target-path", os.path.join(workdir, "target"), "--log-path", os.path.join(workdir, "logs"),
    ]
