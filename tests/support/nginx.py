"""nginx in front of console replicas for the tests: Debian's nginx, run in the foreground from a folder of its own.

`start_nginx(folder, replicas=[...])` writes the site `deploy/nginx.py` renders (the one operators install) into a
standalone nginx.conf under `folder`, starts `nginx -p folder -c folder/nginx.conf` on a free loopback port and
waits until it answers. Nothing here depends on pytest.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.nginx import site_config, standalone_config

NGINX = Path("/usr/sbin/nginx")
INSTALL_HINT = ("nginx isn't installed (no /usr/sbin/nginx): `make test` installs Debian's nginx-light, or run "
                "`apt-get install -y nginx-light` (or `nginx`).")


class NginxMissing(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningNginx:
    folder: Path
    port: int
    replicas: list[str]
    process: subprocess.Popen
    site_options: dict

    @property
    def url(self) -> str:
        scheme = "https" if self.site_options.get("tls_cert") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.folder / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.folder / "error.log"

    def reload(self, *, replicas: list[str]) -> None:
        """Points nginx at other replicas without dropping connections (`nginx -s reload`): new workers take new
        connections, the old ones finish theirs."""
        _write_config(self.folder, self.port, replicas, self.site_options)
        _check(self.folder)
        subprocess.run([str(NGINX), "-p", str(self.folder), "-c", str(self.config_file), "-s", "reload"],
                       check=True, capture_output=True, timeout=30)
        self.replicas = list(replicas)
        time.sleep(0.3)  # the new workers start

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _write_config(folder: Path, port: int, replicas: list[str], site_options: dict) -> None:
    site = site_config(listen=port, replicas=replicas, listen_address="127.0.0.1", **site_options)
    (folder / "site.conf").write_text(site)  # what an operator would install, for reading when a test fails
    (folder / "nginx.conf").write_text(standalone_config(prefix=folder, site=site))


def _check(folder: Path) -> None:
    done = subprocess.run([str(NGINX), "-t", "-q", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"nginx refused its configuration:\n{done.stderr.strip()}")


def start_nginx(folder: Path, *, replicas: list[str], port: int | None = None, timeout: float = 20,
                **site_options: object) -> RunningNginx:
    """nginx on 127.0.0.1:`port` (a free one by default) in front of `replicas` (`host:port` each); `site_options`
    go to `deploy.nginx.site_config` (tls_cert, tls_key, secure_cookies, …)."""
    if not NGINX.exists():
        raise NginxMissing(INSTALL_HINT)
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):  # a free port can be taken by someone else before nginx binds it
        chosen = port or _free_port()
        _write_config(folder, chosen, replicas, dict(site_options))
        _check(folder)
        with open(folder / "nginx.out", "w") as out:
            process = subprocess.Popen([str(NGINX), "-p", str(folder), "-c", str(folder / "nginx.conf")],
                                       stdout=out, stderr=subprocess.STDOUT)
        running = RunningNginx(folder, chosen, list(replicas), process, dict(site_options))
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", chosen), timeout=1):
                    return running
            except OSError:
                time.sleep(0.05)
        running.stop()
        log = "".join(path.read_text(errors="replace") for path in (folder / "nginx.out", running.error_log)
                      if path.exists())
        if "Address already in use" in log and port is None and attempt < 2:
            continue
        raise RuntimeError(f"nginx did not start on port {chosen}:\n{log[-2000:]}")
    raise AssertionError("unreachable")
