"""docker is not available where these tests run, so the deploy files are checked statically:
every file docker-compose.yml mounts or builds exists, the Dockerfile's binary and config paths are
the ones compose runs, the compose config passes `check-config`, and Prometheus scrapes the port
the gateway's admin server listens on."""

import re
import subprocess

import yaml

import harness

ROOT = harness.ROOT


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


def dockerfile():
    return (ROOT / "Dockerfile").read_text()


def test_every_referenced_file_exists():
    compose = load("docker-compose.yml")
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            assert (context / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    for line in dockerfile().splitlines():
        m = re.match(r"COPY (?!--from)(.+) (\S+)$", line)
        if m:
            for source in m.group(1).split():
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerfile_and_compose_agree_on_paths():
    text = dockerfile()
    binary = re.search(r"COPY --from=builder \S+/release/bedrock-balancer (\S+)", text).group(1)
    entry = re.search(r'ENTRYPOINT \["([^"]+)"\]', text).group(1)
    assert entry == binary
    config_dir = re.search(r"COPY config/ (\S+)", text).group(1).rstrip("/")
    assert "cargo build --release --locked" in text
    assert re.search(r"^USER (?!root|0\b)", text, re.M), "runtime must not run as root"
    compose = load("docker-compose.yml")
    gateway = compose["services"]["gateway"]
    command = gateway["command"]
    assert command[0] == "serve"
    path = command[command.index("--config") + 1]
    assert path.startswith(config_dir + "/"), path
    assert (ROOT / "config" / path[len(config_dir) + 1:]).is_file()
    for name, service in compose["services"].items():
        if name.startswith("sim-"):
            assert service["command"][0] == "sim"


def compose_config_path():
    command = load("docker-compose.yml")["services"]["gateway"]["command"]
    return ROOT / "config" / command[command.index("--config") + 1].rsplit("/", 1)[1]


def test_compose_config_passes_check_config():
    out = subprocess.run([harness.BIN, "check-config", str(compose_config_path())],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ports_line_up():
    compose = load("docker-compose.yml")
    gateway_config = yaml.safe_load(compose_config_path().read_text())
    admin_port = int(gateway_config["server"]["admin_listen"].rsplit(":", 1)[1])
    listen_port = int(gateway_config["server"]["listen"].rsplit(":", 1)[1])
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", dockerfile(), re.M).group(1).split()}
    assert {admin_port, listen_port} <= exposed
    published = {int(p.split(":")[1]) for p in compose["services"]["gateway"]["ports"]}
    assert {admin_port, listen_port} <= published
    prometheus = load("dashboards/prometheus.yml")
    targets = [t for job in prometheus["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]
    assert f"gateway:{admin_port}" in targets
    # Every simulator the gateway points at is a compose service listening on that port.
    services = compose["services"]
    for route in gateway_config["routes"]:
        for target in route["targets"]:
            url = target["model"]["options"]["upstream_url"]
            host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
            assert host in services, url
            command = services[host]["command"]
            assert command[command.index("--listen") + 1] == f"0.0.0.0:{port}", url
    # Grafana gets the dashboard where its provisioning looks.
    provider = load("dashboards/grafana/provisioning/dashboards/dashboards.yml")["providers"][0]
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(v.split(":")[1].startswith(provider["options"]["path"]) for v in mounts)
