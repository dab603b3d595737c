"""A thin skopeo wrapper bound to one registry host, with its own auth file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

TIMEOUT = 60

Creds = tuple[str, str]
Result = subprocess.CompletedProcess[str]


class Skopeo:
    """Run skopeo against ``host`` over plain HTTP; never raises on a non-zero exit.

    Logins go to ``authfile_dir/auth.json`` (and DOCKER_CONFIG points there too), so ~/.docker
    and the user's containers auth file are never read or written. ``ref`` arguments are
    ``repo:tag`` or ``repo@digest`` relative to ``host``. Without ``creds`` and without a login,
    access is anonymous.
    """

    def __init__(self, host: str, authfile_dir: Path) -> None:
        self.host = host
        authfile_dir.mkdir(parents=True, exist_ok=True)
        self.authfile = authfile_dir / "auth.json"
        self._env = {
            **os.environ,
            "REGISTRY_AUTH_FILE": str(self.authfile),
            "DOCKER_CONFIG": str(authfile_dir),
        }

    def docker_ref(self, ref: str) -> str:
        return f"docker://{self.host}/{ref}"

    def login(self, user: str, password: str) -> Result:
        return self.run(
            ["login", "--tls-verify=false", "-u", user, "--password-stdin", self.host],
            stdin=password,
        )

    def logout(self) -> Result:
        return self.run(["logout", self.host])

    def copy(
        self,
        src_oci: str | Path,
        dest_ref: str,
        creds: Creds | None = None,
        all_images: bool = False,
    ) -> Result:
        """Push an OCI layout image, ``DIR:TAG`` (an ``oci:`` prefix is optional)."""
        source = str(src_oci)
        if not source.startswith("oci:"):
            source = f"oci:{source}"
        return self.run(
            [
                "copy",
                "--dest-tls-verify=false",
                *self._creds("--dest-creds", creds),
                *(["--all"] if all_images else []),
                source,
                self.docker_ref(dest_ref),
            ]
        )

    def pull(self, ref: str, dest_oci_dir: Path, creds: Creds | None = None) -> Result:
        """Copy ``ref`` into the OCI layout ``dest_oci_dir``, tagged like ``ref`` if it has one."""
        name = ref.split("@", 1)[0]
        tag = name.rpartition(":")[2] if ":" in name else ""
        dest = f"oci:{dest_oci_dir}:{tag}" if tag else f"oci:{dest_oci_dir}"
        return self.run(
            [
                "copy",
                "--src-tls-verify=false",
                *self._creds("--src-creds", creds),
                self.docker_ref(ref),
                dest,
            ]
        )

    def inspect(self, ref: str, creds: Creds | None = None, raw: bool = False) -> Result:
        return self.run(
            [
                "inspect",
                "--tls-verify=false",
                *self._creds("--creds", creds),
                *(["--raw"] if raw else []),
                self.docker_ref(ref),
            ]
        )

    def list_tags(self, repo: str, creds: Creds | None = None) -> Result:
        return self.run(
            [
                "list-tags",
                "--tls-verify=false",
                *self._creds("--creds", creds),
                self.docker_ref(repo),
            ]
        )

    def delete(self, ref: str, creds: Creds | None = None) -> Result:
        return self.run(
            [
                "delete",
                "--tls-verify=false",
                *self._creds("--creds", creds),
                self.docker_ref(ref),
            ]
        )

    def run(self, args: list[str], stdin: str | None = None) -> Result:
        # --authfile right after the subcommand: every subcommand used here accepts it.
        command = ["skopeo", args[0], "--authfile", str(self.authfile), *args[1:]]
        return subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=self._env,
            check=False,
        )

    @staticmethod
    def _creds(flag: str, creds: Creds | None) -> list[str]:
        return [flag, f"{creds[0]}:{creds[1]}"] if creds else []
