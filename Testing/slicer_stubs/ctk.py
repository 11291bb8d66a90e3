"""Test-only stand-in for PythonQt's ``ctk`` module: MDTexture.py imports it only so the .ui can use CTK widgets."""
