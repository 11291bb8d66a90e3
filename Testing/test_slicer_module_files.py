"""The Slicer extension's files: .ui names against the Widget code, CMake lists, catalogue entry, icon, and the
module file itself (imported with test-only stand-ins for the Qt parts, its self-test run on a real MRML scene).
"""

from __future__ import annotations

import ast
import json
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import slicer  # slicer-core (test extra): failing here is intended when it is missing
import slicer.util

ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "MDTexture"
MODULE_PY = MODULE_DIR / "MDTexture.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "MDTexture.ui"


# ---------------------------------------------------------------------------------------------------------------
# .ui <-> Widget code


def _ui_widgets():
    tree = ET.parse(UI_FILE)
    return {w.get("name"): w.get("class") for w in tree.iter("widget")}, tree


def _names_used_in_code():
    source = MODULE_PY.read_text(encoding="utf-8")
    return set(re.findall(r"self\.ui\.([A-Za-z_][A-Za-z0-9_]*)", source))


def test_every_ui_name_used_in_code_exists_and_the_reverse():
    widgets, tree = _ui_widgets()
    root = tree.find("widget")
    assert root.get("class") == "qMRMLWidget" and root.get("name") == "MDTexture"
    used = _names_used_in_code()
    assert used, "the Widget uses no self.ui names?"
    missing = sorted(used - set(widgets))
    assert not missing, f"MDTexture.py uses widgets that the .ui lacks: {missing}"
    # Reverse: every named widget is wired in the code, except the root and the form-row captions (QLabels whose
    # names end in "Caption", text only).
    unused = sorted(n for n, cls in widgets.items()
                    if n not in used and n != "MDTexture" and not (cls == "QLabel" and n.endswith("Caption")))
    assert not unused, f"widgets in the .ui that MDTexture.py never uses: {unused}"
    captions = {w.get("name"): w.findtext("property/string") for w in tree.iter("widget")
                if w.get("name").endswith("Caption")}
    assert all(widgets[n] == "QLabel" for n in captions) and len(captions) == 16
    assert all(text and text.endswith(":") for text in captions.values()), captions


def test_ui_custom_widgets_declared_and_scene_connected():
    widgets, tree = _ui_widgets()
    declared = {c.findtext("class") for c in tree.iter("customwidget")}
    standard = {"QLabel", "QPushButton", "QComboBox", "QProgressBar", "QDoubleSpinBox", "QPlainTextEdit", "QCheckBox"}
    for name, cls in widgets.items():
        assert cls in declared or cls in standard, f"{name}: class {cls} is neither Qt nor declared"
    mrml = {n for n, cls in widgets.items() if cls.startswith("qMRML") and n != "MDTexture"}
    connected = {c.findtext("receiver") for c in tree.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)" and c.findtext("sender") == "MDTexture"}
    assert connected == mrml
    # The selectors accept the right node types.
    types_of = {w.get("name"): [s.text for s in w.findall("property[@name='nodeTypes']/stringlist/string")]
                for w in tree.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    assert types_of == {"waterSelector": ["vtkMRMLScalarVolumeNode"], "fatSelector": ["vtkMRMLScalarVolumeNode"],
                        "ffSelector": ["vtkMRMLScalarVolumeNode"], "segmentationSelector": ["vtkMRMLSegmentationNode"],
                        "scoreTableSelector": ["vtkMRMLTableNode"]}
    # Combo boxes hold exactly the values the parameter node stores.
    items = {w.get("name"): [i.findtext("property/string") for i in w.findall("item")] for w in tree.iter("widget")
             if w.get("class") == "QComboBox"}
    assert items["deviceComboBox"] == ["auto", "cpu", "cuda"]
    from MDTextureLib.precision import PRECISIONS

    assert items["precisionComboBox"] == list(PRECISIONS)  # the command line's --precision, in the panel
    assert items["targetClassComboBox"] == ["auto", "DMD", "CMD", "normal"]
    assert items["viewClassComboBox"] == ["DMD", "CMD", "normal"]
    assert items["backgroundComboBox"] == ["FF", "Water"]
    # The overlay's items are words for people; the Widget maps them by position onto the parameter's values.
    from MDTextureLib.slicer_bridge.parameters import OVERLAYS

    assert items["overlayComboBox"] == ["ICAM", "Fat attribution"] and OVERLAYS == ("icam", "fat")


# ---------------------------------------------------------------------------------------------------------------
# CMake, catalogue entry, icon


def _cmake_set(text, var):
    m = re.search(r"set\(\s*" + re.escape(var) + r"\s+(.*?)\)", text, re.S)
    assert m, var
    return m.group(1).split()


def test_every_file_listed_in_the_module_cmakelists_exists():
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert _cmake_set(text, "MODULE_NAME") == ["MDTexture"]
    listed = _cmake_set(text, "MODULE_PYTHON_SCRIPTS") + _cmake_set(text, "MODULE_PYTHON_RESOURCES")
    listed = [f.replace("${MODULE_NAME}", "MDTexture") for f in listed]
    assert listed == ["MDTexture.py", "Resources/Icons/MDTexture.png", "Resources/UI/MDTexture.ui"]
    for f in listed:
        assert (MODULE_DIR / f).is_file(), f
    assert "slicerMacroBuildScriptedModule(" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    # No other .py file in the module folder: Slicer would try to load each one as a module.
    assert sorted(p.name for p in MODULE_DIR.glob("*.py")) == ["MDTexture.py"]


def test_license_file_matches_pyproject():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Redistribution and use in source and binary forms" in text
    assert re.search(r'license\s*=\s*\{?\s*(text\s*=\s*)?"BSD-3-Clause"', (ROOT / "pyproject.toml").read_text())


def test_top_level_cmakelists_and_catalogue_entry_agree():
    text = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"^project\(MDTexture\)", text, re.M)
    for var in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(r"set\(" + var + r" \"[^\"]+\"\)", text), var
    assert "add_subdirectory(MDTexture)" in text
    assert "ctkMacroCompilePythonScript(" in text and "TARGET_NAME MDTextureLib" in text
    assert (ROOT / "MDTextureLib" / "__init__.py").is_file()
    assert "Resources/Models" in text
    entry = json.loads((ROOT / "MDTexture.json").read_text())
    # Slicer's catalogue-entry schema v1.0.2: required keys and no others.
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
    assert {"$schema", "category", "scm_url"} <= set(entry) <= allowed
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
    category = re.search(r'set\(EXTENSION_CATEGORY "([^"]+)"\)', text).group(1)
    depends = re.search(r'set\(EXTENSION_DEPENDS "([^"]+)"\)', text).group(1).split()
    homepage = re.search(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)', text).group(1)
    assert entry["category"] == category
    assert entry["build_dependencies"] == depends == ["PyTorch"]
    assert entry["scm_url"] == homepage


def test_icon_is_a_small_png():
    data = (MODULE_DIR / "Resources" / "Icons" / "MDTexture.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (128, 128) and len(data) < 50_000


# ---------------------------------------------------------------------------------------------------------------
# The Logic imports neither qt nor ctk; the module file imports with stand-ins


def test_logic_module_imports_no_qt():
    imported = set()
    files = sorted((ROOT / "MDTextureLib" / "slicer_bridge").glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"qt", "ctk", "PythonQt"}
    # And it really imports with qt/ctk made unimportable.
    code = ("import sys; sys.modules['qt'] = None; sys.modules['ctk'] = None; "
            "import MDTextureLib.slicer_bridge as b; print(b.MDTextureLogic.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("MDTextureLogic")


@pytest.fixture
def module_file(monkeypatch):
    """MDTexture.py imported as Slicer would, with the Qt stand-ins (Testing/slicer_stubs) and a real scene."""
    from slicer_widget_fixtures import application_scene, fakeapp

    fakeapp.install(monkeypatch.setattr, monkeypatch.setitem, application_scene())
    return fakeapp.load_module_file(monkeypatch.setitem)


def test_module_description(module_file):
    parent = sys.modules["slicer.ScriptedLoadableModule"].new_parent()
    module_file.MDTexture(parent)
    assert parent.title == "MDTexture" and parent.categories == ["Quantification"]
    assert parent.contributors and "DMD" in parent.helpText and "Cai" in parent.acknowledgementText
    assert module_file.MDTextureLogic is __import__("MDTextureLib.slicer_bridge", fromlist=["x"]).MDTextureLogic
    assert set(module_file.ENGINE_REQUIREMENTS) == {"torch", "safetensors"}
    assert module_file.missingPackages() == []  # this environment has the engine's packages
    assert "LICENSE" not in parent.acknowledgementText and "BSD 3-Clause" in parent.acknowledgementText
    assert module_file.HOMEPAGE in parent.helpText
    from MDTextureLib.constants import FAT_MAP_CAVEAT

    assert FAT_MAP_CAVEAT in parent.helpText  # what the fat map is not, measured


def test_dependency_install_is_skipped_in_testing_mode(module_file, monkeypatch):
    monkeypatch.setattr(module_file, "packageProblems", lambda: {"safetensors": "safetensors is not installed"})
    asked = []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: asked.append(a) or True)
    monkeypatch.setattr(slicer.util, "pip_install", lambda *a, **k: asked.append(a))
    with pytest.raises(RuntimeError, match="not installed automatically in testing mode: safetensors"):
        module_file.ensureDependencies()
    assert asked == []


def test_torchvision_is_not_asked_for(monkeypatch):
    """The engine builds its own ResNet18: a Slicer without torchvision has everything the classification needs, and
    the first-use installer does not offer to install it."""
    import importlib.metadata

    from MDTextureLib.slicer_bridge import requirements

    installed = {"torch": "2.14.1+cpu", "safetensors": "0.4.5"}

    def version(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in installed else None)
    assert requirements.package_problems() == {}
    del installed["torch"]
    assert requirements.package_problems() == {"torch": "torch is not installed"}


def test_first_use_install_without_pytorch_utils_installs_torch_alone(module_file, monkeypatch):
    """Without Slicer's PyTorch extension the installer pip-installs torch (not torchvision), pinning Slicer's own
    packages with a constraints file that it removes afterwards."""
    problems = [{"torch": "torch is not installed"}, {}]
    monkeypatch.setattr(module_file, "packageProblems", lambda: problems.pop(0) if len(problems) > 1 else problems[0])
    monkeypatch.setattr(slicer.app, "testing", False)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: True)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # the extension is not installed
    installs = []
    monkeypatch.setattr(slicer.util, "pip_install", lambda args, *a, **k: installs.append(list(args)))
    assert module_file.ensureDependencies() is True
    assert len(installs) == 1 and installs[0][0] == "torch>=2.1" and installs[0][1] == "-c"
    assert not any("torchvision" in arg for arg in installs[0])
    assert not Path(installs[0][2]).exists() and slicer.app.cursorDepth == 0
