"""qwex-k8s: the Kubernetes backend (Jobs, Kueue by label)."""

__version__ = "0.1.0"
