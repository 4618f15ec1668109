"""The cluster profile: one module per data service, ``profile`` drives them all (deploy/cluster.sh)."""
