"""qwex-k8s: the Kubernetes backend (packaging skeleton; the runner comes with its own issue)."""

__version__ = "0.1.0"
