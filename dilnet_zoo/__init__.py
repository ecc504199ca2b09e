"""dilnet_zoo: ready-made volumetric networks (the registry arrives with the model API)."""
