"""hotline: tiered-service IVR and CTI bridge for an operator's customer hotline."""

__version__ = "0.1.0"
