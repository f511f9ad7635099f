"""Deploy a model version: on this machine, on Kubernetes or OpenShift; scale, roll back, watch it serve."""
