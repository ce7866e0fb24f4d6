"""SmartImaging: oncologic-imaging AI systems for 3D Slicer (core package, no Slicer or Qt)."""

__version__ = "0.1.0"
