"""Test-only stand-in for PythonQt's ``qt`` module: MDTexture.py uses qt only inside the Widget."""
