"""The operator's own calls to a secured cluster: a real router with tokens and HTTPS under
a private CA. The operator reads no Secrets; `spec.tls.caConfigMap` gives it the CA, and
the read-only views it polls need no token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from chroma_operator.api.validate import parse_cluster
from chroma_operator.reconcile import reshard as rs
from chroma_operator.reconcile import router_http
from chroma_operator.reconcile.kube import Kube
from chroma_operator.reconcile.replica_states import collect
from chroma_operator.topology import AuthTopology, TlsTopology
from kube_emulator import ApiServer, events_of, running_operator
from kubectl import cluster_doc, eventually, kubectl_apply
from router_harness import RouterProcess, make_topology, start_servers
from tls_certs import CertFiles, make_certs

NS = "secured"
API = "chroma.operator.dev/v1alpha1"
OBJECTIVE = {"name": "availability", "type": "availability", "target": 0.99}


@pytest.fixture(scope="module")
def secured_router(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RouterProcess, CertFiles]]:
    d = tmp_path_factory.mktemp("secured")
    certs = make_certs(d)
    tokens = d / "tokens.yaml"
    tokens.write_text(
        yaml.safe_dump(
            {"tokens": [{"name": "app", "token": "s3cret", "tenant": "*", "role": "read"}]}
        )
    )
    shards = start_servers(1)
    tls = TlsTopology(cert_file=str(certs.cert), key_file=str(certs.key), ca_file=str(certs.ca))
    topology = make_topology([[shards[0].url]]).model_copy(
        update={"auth": AuthTopology(tokens_file=str(tokens)), "tls": tls}
    )
    router = RouterProcess(topology, ca_file=str(certs.ca)).start()
    try:
        yield router, certs
    finally:
        router.stop()
        for s in shards:
            s.stop()


def secured_spec(ca_config_map: str | None) -> dict[str, Any]:
    tls: dict[str, Any] = {"secretName": "routers-tls"}
    if ca_config_map:
        tls["caConfigMap"] = {"name": ca_config_map}
    return {
        "shards": 1,
        "auth": {"secretName": "routers-tokens"},
        "tls": tls,
        "slo": {"evaluationIntervalSeconds": 5, "objectives": [OBJECTIVE]},
    }


async def test_slo_scrape_verifies_the_routers_with_the_ca_config_map(
    apiserver: ApiServer, kube: Kube, secured_router: tuple[RouterProcess, CertFiles]
) -> None:
    router, certs = secured_router
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "routers-ca", "namespace": NS},
            "data": {"ca.crt": certs.ca.read_text()},
        }
    )
    await kubectl_apply(kube, cluster_doc("trusted", NS, secured_spec("routers-ca")))
    await kubectl_apply(kube, cluster_doc("untrusted", NS, secured_spec(None)))

    def slo_of(name: str) -> Any:
        return kube.get(API, "ChromaCluster", NS, name)

    def condition(obj: dict[str, Any]) -> dict[str, Any]:
        conds = (obj.get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "SLOMet"), {})

    with running_operator(
        str(apiserver.url), [NS], metrics_urls=lambda owner, spec: [router.url + "/metrics"]
    ):
        trusted = await eventually(
            lambda: slo_of("trusted"),
            lambda c: ((c.get("status") or {}).get("slo") or {}).get("routers") == 1,
            timeout=30,
        )
        assert condition(trusted)["reason"] != "NoRoutersScraped"
        # Same router, no CA given: the operator's trust store does not know the private
        # CA, so nothing is scraped, and the condition says so (never a false "met").
        untrusted = await eventually(
            lambda: slo_of("untrusted"), lambda c: condition(c).get("status"), timeout=30
        )
        assert condition(untrusted)["reason"] == "NoRoutersScraped"
        assert "CERTIFICATE_VERIFY_FAILED" in condition(untrusted)["message"]  # and why
        assert untrusted["status"]["slo"]["routers"] == 0
        # ... and `kubectl get events` shows it: one Warning, naming the cause.
        warnings = await eventually(
            lambda: events_of(apiserver),
            lambda evs: any(e.get("reason") == "SLORoutersUnreachable" for e in evs),
            timeout=30,
        )
        (warning,) = [e for e in warnings if e.get("reason") == "SLORoutersUnreachable"]
        assert warning["involvedObject"]["name"] == "untrusted"
        assert warning["type"] == "Warning"
        assert "CERTIFICATE_VERIFY_FAILED" in warning["message"]


async def test_replica_states_and_placement_epochs_need_the_ca_but_no_token(
    apiserver: ApiServer, kube: Kube, secured_router: tuple[RouterProcess, CertFiles]
) -> None:
    router, certs = secured_router
    clients = router_http.RouterClients()
    try:
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "bundle", "namespace": NS},
                "data": {"roots.pem": certs.ca.read_text()},
            }
        )
        doc = cluster_doc("c", NS, secured_spec(None))["spec"]
        doc["tls"]["caConfigMap"] = {"name": "bundle", "key": "roots.pem"}
        spec = parse_cluster(cluster_doc("c", NS, doc)).spec
        client = await router_http.client_for(kube, clients, NS, spec)
        assert client is not clients.default
        assert await router_http.client_for(kube, clients, NS, spec) is client  # one per CA
        views = await collect(client, [router.url + "/metrics"], {})
        assert views is not None and all(v.state == "in-sync" for v in views.values())
        placement = await client.get(router.url + "/internal/placement")
        assert placement.status_code == 200 and placement.json()["epoch"] >= 0
        # The operator's trust store alone cannot verify this router.
        assert await collect(clients.default, [router.url + "/metrics"], {}) is None
        with pytest.raises(httpx.ConnectError):
            await clients.default.get(router.url + "/internal/placement")
        # A ConfigMap that is not there, or not PEM: the default client, and a log line.
        doc["tls"]["caConfigMap"] = {"name": "missing"}
        missing = parse_cluster(cluster_doc("c", NS, doc)).spec
        assert await router_http.client_for(kube, clients, NS, missing) is clients.default
        await kube.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "junk", "namespace": NS},
                "data": {"ca.crt": "not a certificate"},
            }
        )
        doc["tls"]["caConfigMap"] = {"name": "junk"}
        junk = parse_cluster(cluster_doc("c", NS, doc)).spec
        assert await router_http.client_for(kube, clients, NS, junk) is clients.default
    finally:
        await clients.aclose()


def test_router_base_is_the_pod_ip_over_http_and_the_pod_dns_name_over_https() -> None:
    pod = {
        "metadata": {"name": "c-shard-0-1"},
        "spec": {"hostname": "c-shard-0-1", "subdomain": "c-shard-0"},
        "status": {"podIP": "10.0.0.7"},
    }
    assert rs.router_base(pod, "ns", 8080, tls=False) == "http://10.0.0.7:8080"
    assert (
        rs.router_base(pod, "ns", 8080, tls=True)
        == "https://c-shard-0-1.c-shard-0.ns.svc.cluster.local:8080"
    )
    assert rs.router_base({"status": {}}, "ns", 8080, tls=False) is None
    assert rs.router_base({"spec": {}}, "ns", 8080, tls=True) is None
