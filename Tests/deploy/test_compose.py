"""The compose stack: podman-compose brings up deploy/compose.yaml with the
FlowForest image and local PostgreSQL and Prometheus images (no registry
here); the sensor captures on a lab interface and writes its flows to
PostgreSQL, and Prometheus scrapes it. Grafana is not started: it is not in
Debian and its image cannot be pulled here; its provisioning and every panel
query are checked in test_static and test_prometheus_live."""

import json
import os
import secrets
import urllib.parse

import pytest
import yaml

from conftest import DEPLOY, free_port, have, http_get, needs_root, run, wait_for

pytestmark = [needs_root, pytest.mark.skipif(not (have("podman") and have("podman-compose")),
                                             reason="podman and podman-compose needed")]

HERE = os.path.dirname(os.path.abspath(__file__))
STAND_INS = {"prometheus": "localhost/flowforest-test-prometheus:latest",
             "postgres": "localhost/flowforest-test-postgres:latest"}


@pytest.fixture(scope="module")
def stand_in_images(image):
    """PostgreSQL and Prometheus images from Debian's packages on the same base,
    with the official images' entrypoints and paths."""
    _, env = image
    for name, tag in STAND_INS.items():
        build = run(["podman", "build", "--network", "host", "-t", tag, "-f", f"{HERE}/images/{name}.Containerfile",
                     f"{HERE}/images"], env=env, check=False)
        assert build.returncode == 0, build.stderr[-3000:]
    return STAND_INS


def test_compose_stack_sensor_writes_to_postgres_and_is_scraped(tmp_path, image, stand_in_images, veth_lab):
    tag, env = image
    project = f"ffdep{os.getpid()}"
    ports = {name: free_port() for name in ["FLOWFOREST_PORT", "POSTGRES_PORT", "PROMETHEUS_PORT", "GRAFANA_PORT"]}
    password = secrets.token_urlsafe(18)
    # The shipped scrape job, pointed at this test's sensor port.
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "2s"
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['FLOWFOREST_PORT']}"]}]
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(yaml.safe_dump(config))
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in {
        **ports,
        "POSTGRES_PASSWORD": password,
        "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "FLOWFOREST_INTERFACE": veth_lab.host_if,
        "FLOWFOREST_MODE": "tc",
        "FLOWFOREST_IMAGE": tag,
        "POSTGRES_IMAGE": stand_in_images["postgres"],
        "PROMETHEUS_IMAGE": stand_in_images["prometheus"],
        "PROMETHEUS_CONFIG": str(prom_config),
    }.items()))
    compose = ["podman-compose", "--env-file", str(env_file), "-p", project, "-f", str(DEPLOY / "compose.yaml")]
    pg = f"{project}_postgres_1"
    sensor = f"{project}_flowforest_1"

    def logs(name):
        return run(["podman", "logs", name], env=env, check=False).stderr[-2000:]

    try:
        up = run(compose + ["up", "-d", "postgres", "flowforest", "prometheus"], env=env, check=False, cwd=DEPLOY)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]

        health = wait_for("sensor health with PostgreSQL",
                          lambda: (lambda r: r if r[0] == 200 else None)(
                              http_get(f"http://127.0.0.1:{ports['FLOWFOREST_PORT']}/api/health")),
                          timeout=120)
        reply = json.loads(health[1])
        assert reply["database"] == "postgresql" and reply["store"] == "ok", (reply, logs(sensor))

        def psql(sql):
            r = run(["podman", "exec", pg, "psql", "-h", "/var/run/postgresql", "-p", str(ports["POSTGRES_PORT"]),
                     "-U", "flowforest", "-d", "flowforest",
                     "-tAc", sql], env=env, check=False)
            return r.stdout.strip() if r.returncode == 0 else None

        tables = psql("select string_agg(table_name, ',') from information_schema.tables where table_schema = 'public'")
        assert tables and "anomalies" in tables and "flows" in tables, (tables, logs(sensor))

        # Traffic ends as a flow after the idle timeout; the sensor writes it to PostgreSQL.
        ping = veth_lab.ping(count=10, interval=0.2)
        assert "10 received" in ping.stdout, ping.stdout
        # 10 echo requests and 10 replies, one ICMP flow from the namespace side, every packet in it.
        packets = wait_for("the ping flow written to PostgreSQL",
                           lambda: int(psql("select coalesce(sum(fwd_packets + rev_packets), 0) from flows "
                                            f"where protocol = 1 and state = 'ended' and src_ip = '{veth_lab.peer_ip}' "
                                            f"and dst_ip = '{veth_lab.host_ip}'") or 0),
                           timeout=60, interval=2)
        assert packets == 20, (packets, logs(sensor))

        prom = f"http://127.0.0.1:{ports['PROMETHEUS_PORT']}"
        def scraped():
            status, body = http_get(f"{prom}/api/v1/query?" + urllib.parse.urlencode(
                {"query": 'flowforest_packets_total{job="flowforest", mode="tc"}'}))
            return status == 200 and json.loads(body)["data"]["result"]
        wait_for("Prometheus scraping the sensor", scraped, timeout=60, interval=2)
    finally:
        run(compose + ["down", "-v", "-t", "10"], env=env, check=False, cwd=DEPLOY)
        # Whatever `down` left (a container mid-restart) goes too, with the project's volumes.
        for name in [sensor, pg, f"{project}_prometheus_1"]:
            run(["podman", "rm", "-f", "-v", "-t", "5", name], env=env, check=False)
        for volume in run(["podman", "volume", "ls", "-q", "--filter", f"label=io.podman.compose.project={project}"],
                          env=env, check=False).stdout.split():
            run(["podman", "volume", "rm", "-f", volume], env=env, check=False)

