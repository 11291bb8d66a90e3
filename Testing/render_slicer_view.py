"""Render Resources/slicer_view.png: the MDTexture module's result, drawn offscreen from a real MRML scene.

Not a test (pytest does not collect it). Usage, from the repository root:

    VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow python Testing/render_slicer_view.py [output.png]

What is real and what is not:
- The scene is built exactly as the module's Logic builds it (MDTextureLib.slicer_bridge.MDTextureLogic) on a phantom
  (MDTextureLib.phantom, DMD, seed 3) read by Slicer's storage nodes.
- The left panel comes from Slicer's own slice layers in slicer-core (vtkMRMLSliceLogic / vtkMRMLSliceLayerLogic):
  FF as background, the heatmap volume as foreground (its colour table and the threshold that makes low values
  transparent) and the muscle segmentation, exported onto the FF grid, as label layer drawn as outlines. The three
  RGBA layers are blended with numpy using the slice composite node's opacities (the slice logic's own blended
  output is not used here). There is no Qt panel: the right side is drawn with matplotlib
  from the probability table node and the texture-score table node.
- The model is the shipped ``icam28`` (trained on synthetic phantoms); the phantom is a synthetic DMD scan, so the
  figure shows the display on a phantom result, not a clinical one.
"""

import os
import sys
import tempfile

import numpy as np
import vtk

import slicer
import slicer.util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from MDTextureLib import slicer_bridge as sb  # noqa: E402
from MDTextureLib.constants import CLASSES  # noqa: E402
from MDTextureLib.modelfile import default_model_path, load_model  # noqa: E402
from MDTextureLib.phantom import make_scan, write_scan  # noqa: E402

VIEW_PX = 440
_KEEP = []  # module logics must outlive build_scene: a destroyed colour logic removes its colour nodes


def build_scene(folder):
    scan = make_scan("DMD", seed=3, n_slices=12, matrix=192, pixel_mm=1.0)
    write_scan(scan, folder)
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkMRMLApplicationLogic()
    app.SetMRMLScene(scene)
    color_logic = slicer.vtkMRMLColorLogic()
    for name, logic in (("Colors", color_logic), ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic())):
        _KEEP.append(logic)
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
    if scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is None:
        color_logic.AddDefaultColorNodes()
    assert scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is not None
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    for rule in ("vtkBinaryLabelmapToClosedSurfaceConversionRule", "vtkClosedSurfaceToBinaryLabelmapConversionRule"):
        factory.RegisterConverterRule(getattr(slicer, rule)())
    slice_logic = slicer.vtkMRMLSliceLogic()
    slice_logic.SetMRMLApplicationLogic(app)
    slice_logic.SetMRMLScene(scene)
    slice_node = slice_logic.AddSliceNode("Red")  # also adds its slice composite node

    def read(file, name):
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(os.path.join(folder, file))
        assert storage.ReadData(node)
        node.SetAndObserveStorageNodeID(storage.GetID())
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")  # what Add Data sets in Slicer
        return node

    water, fat, ff = read("water.nrrd", "water"), read("fat.nrrd", "fat"), read("ff.nrrd", "ff")
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "muscles")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(os.path.join(folder, "muscles.seg.nrrd"))
    assert storage.ReadData(seg)
    seg.CreateDefaultDisplayNodes()
    seg.GetDisplayNode().SetOpacity2DFill(0.15)

    logic = sb.MDTextureLogic(scene)
    logic.setModel(load_model(default_model_path()))
    p = logic.getParameterNode()
    p.water, p.fat, p.ff, p.device = water, fat, ff, "cpu"
    logic.classify(p)
    p.opacity = 0.55
    logic.showHeatmap(p)
    p.segmentation = seg
    logic.computeScores(p)
    return scene, app, slice_logic, slice_node, p


def render_slice(scene, slice_logic, slice_node, p, path):
    """Slicer's slice layers (reslice, colour table, threshold alpha) for FF, heatmap and muscle outlines, blended
    with the composite node's opacities the way vtkMRMLSliceLogic blends them, then written as PNG."""
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "muscles labelmap")
    ids = vtk.vtkStringArray()
    seg = p.segmentation.GetSegmentation()
    for i in range(seg.GetNumberOfSegments()):
        ids.InsertNextValue(seg.GetNthSegmentID(i))
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
        p.segmentation, ids, labelmap, p.ff, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    colors = slicer.vtkMRMLColorTableNode()
    colors.SetTypeToUser()
    colors.SetNumberOfColors(seg.GetNumberOfSegments() + 1)
    colors.SetColor(0, "background", 0, 0, 0, 0)
    for i in range(seg.GetNumberOfSegments()):
        colors.SetColor(i + 1, seg.GetNthSegment(i).GetName(), *seg.GetNthSegment(i).GetColor(), 1.0)
    scene.AddNode(colors)
    labelmap.CreateDefaultDisplayNodes()
    labelmap.GetDisplayNode().SetAndObserveColorNodeID(colors.GetID())
    composite = slice_logic.GetSliceCompositeNode()
    composite.SetLabelVolumeID(labelmap.GetID())
    composite.SetLabelOpacity(1.0)
    slice_node.SetUseLabelOutline(True)
    slice_node.SetDimensions(VIEW_PX, VIEW_PX, 1)
    slice_logic.FitSliceToAll()

    def rgba(layer):
        producer = layer.GetImageDataConnection().GetProducer()
        producer.Update()
        image = producer.GetOutputDataObject(0)
        dims = image.GetDimensions()
        from vtk.util.numpy_support import vtk_to_numpy

        array = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[1], dims[0], -1)
        return array[::-1].astype(np.float32) / 255.0  # VTK rows run bottom-up

    background = rgba(slice_logic.GetBackgroundLayer())[..., :3]
    heat = rgba(slice_logic.GetForegroundLayer())
    labels = rgba(slice_logic.GetLabelLayer())
    alpha = heat[..., 3:4] * composite.GetForegroundOpacity()
    out = background * (1 - alpha) + heat[..., :3] * alpha
    alpha = labels[..., 3:4] * composite.GetLabelOpacity()
    out = out * (1 - alpha) + labels[..., :3] * alpha
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.imsave(path, np.clip(out, 0, 1))


def compose(slice_png, p, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    view = plt.imread(slice_png)
    probs = p.probabilityTable.GetTable()
    k = np.array([probs.GetValue(r, 0).ToInt() for r in range(probs.GetNumberOfRows())])
    fig = plt.figure(figsize=(11.0, 5.6), dpi=90)
    ax = fig.add_axes([0.01, 0.08, 0.42, 0.84])
    ax.imshow(view)
    ax.set_axis_off()
    ax.set_title(f"Red slice view: {p.ff.GetName()} + {p.heatmap(p.viewClass).GetName()} (opacity {p.opacity:.2f}) "
                 f"+ {p.segmentation.GetName()}", fontsize=8)
    chart = fig.add_axes([0.49, 0.62, 0.48, 0.3])
    for j, c in enumerate(CLASSES):
        chart.plot(k, [probs.GetValue(r, j + 1).ToDouble() for r in range(len(k))], "o-", ms=3,
                   color=sb.PLOT_COLORS[c], label=c)
    chart.set_ylim(0, 1)
    chart.set_xlabel("axial slice", fontsize=8)
    chart.set_ylabel("probability", fontsize=8)
    chart.legend(fontsize=7, ncol=3)
    chart.tick_params(labelsize=7)
    chart.set_title(f"{p.probabilityChart.GetName()}   verdict: {p.verdict}", fontsize=8)
    table = p.scoreTable
    t = table.GetTable()
    cols = ["muscle", "slices_present", "slices_highlighted", "texture_score", "mean_ff", "volume_ml"]
    idx = [[t.GetColumnName(c) for c in range(t.GetNumberOfColumns())].index(c) for c in cols]
    cells = []
    for r in range(t.GetNumberOfRows()):
        row = []
        for c in idx:
            v = t.GetValue(r, c)
            row.append(v.ToString() if c == 0 else (f"{v.ToDouble():.2f}" if c in idx[3:] else str(v.ToInt())))
        cells.append(row)
    tab = fig.add_axes([0.49, 0.1, 0.48, 0.42])
    tab.set_axis_off()
    widget = tab.table(cellText=cells, colLabels=[table.GetColumnTitle(c) or c for c in cols], loc="upper center",
                       cellLoc="center")
    widget.auto_set_font_size(False)
    widget.set_fontsize(7.5)
    widget.scale(1, 1.25)
    tab.set_title(f"{table.GetName()} (threshold {table.GetAttribute('MDTexture.threshold')}, min overlap "
                  f"{table.GetAttribute('MDTexture.minOverlap')}, min area {table.GetAttribute('MDTexture.minAreaMm2')} "
                  "mm²)", fontsize=8)
    fig.text(0.01, 0.015, "Rendered offscreen from the MRML scene: slice layers by slicer-core's vtkMRMLSliceLogic "
             "(FF, heatmap, muscle outlines), blended with numpy; chart and table drawn with matplotlib from the "
             "table nodes.\nSynthetic phantom (DMD, seed 3) classified by the shipped icam28, itself trained on synthetic "
             "phantoms: a phantom result, not a clinical one.",
             fontsize=7, color="firebrick")
    fig.savefig(out, dpi=90)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Resources", "slicer_view.png")
    with tempfile.TemporaryDirectory() as folder:
        scene, app, slice_logic, slice_node, p = build_scene(folder)
        slice_png = os.path.join(folder, "slice.png")
        render_slice(scene, slice_logic, slice_node, p, slice_png)
        compose(slice_png, p, out)
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
