"""The kubectl equivalents shown for learning (pure)."""

from __future__ import annotations

from pathlib import Path

from labkit.kube import kubectl


def test_apply_is_server_side_with_the_labkit_field_manager() -> None:
    assert kubectl.apply_cmd(["infra/k8s/serving"]) == (
        "kubectl apply --server-side --field-manager=labkit -f infra/k8s/serving"
    )
    assert kubectl.apply_cmd([], force_conflicts=True, dry_run=True, namespace="serving") == (
        "kubectl apply --server-side --field-manager=labkit --force-conflicts --dry-run=server -n serving -f -"
    )


def test_rollout_wait_and_get_commands() -> None:
    assert kubectl.rollout_status_cmd("deployment/vllm", namespace="serving", timeout=300) == (
        "kubectl rollout status deployment/vllm -n serving --timeout=300s"
    )
    assert kubectl.wait_cmd("pod", for_="condition=Ready", selector="app=x", timeout=60) == (
        "kubectl wait --for=condition=Ready pod -l app=x --timeout=60s"
    )
    assert kubectl.wait_cmd("pod/p", for_="jsonpath={.status.phase}=Running", namespace="a", timeout=2.5) == (
        "kubectl wait --for='jsonpath={.status.phase}=Running' pod/p -n a --timeout=3s"
    )
    assert kubectl.get_cmd("pods", namespace="serving", output="wide") == "kubectl get pods -n serving -o wide"
    assert kubectl.get_cmd("nodes", selector="karpenter.sh/nodepool in (gpu)") == (
        "kubectl get nodes -l 'karpenter.sh/nodepool in (gpu)'"
    )


def test_delete_logs_describe_events_and_port_forward() -> None:
    assert kubectl.delete_cmd(ref="deployment/vllm", namespace="serving", timeout=120) == (
        "kubectl delete deployment/vllm -n serving --ignore-not-found --wait=true --timeout=120s"
    )
    assert kubectl.delete_cmd(["a.yaml"], cascade="foreground", wait=False, ignore_not_found=False) == (
        "kubectl delete -f a.yaml --cascade=foreground --wait=false"
    )
    assert kubectl.logs_cmd("vllm-0", namespace="serving", container="server", tail=50, previous=True) == (
        "kubectl logs vllm-0 -n serving -c server --tail=50 --previous"
    )
    assert kubectl.describe_cmd("pod/x", namespace="n") == "kubectl describe pod/x -n n"
    assert kubectl.events_cmd(namespace="n", for_ref="pod/x", warnings_only=True) == (
        "kubectl events -n n --for pod/x --types=Warning"
    )
    assert kubectl.port_forward_cmd("svc/vllm", namespace="serving", remote_port=80) == (
        "kubectl port-forward svc/vllm -n serving :80"
    )


def test_paths_are_shown_relative_to_the_working_directory(tmp_path: Path) -> None:
    inside = tmp_path / "infra" / "k8s"
    assert kubectl.display_path(inside, cwd=tmp_path) == "infra/k8s"
    assert kubectl.display_path("/elsewhere/x.yaml", cwd=tmp_path) == "/elsewhere/x.yaml"
