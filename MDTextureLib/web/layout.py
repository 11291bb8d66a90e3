"""The page: a drawer with the workflow's steps (open, classify, heatmap, muscles, scores) beside the slice view.

Only wiring: each control calls a :class:`~MDTextureLib.web.session.WebSession` method through ``act`` (which turns
any error into the page's message). Element ids are what the browser tests find.
"""

from __future__ import annotations

from trame.ui.vuetify3 import SinglePageWithDrawerLayout
from trame.widgets import html
from trame.widgets import vuetify3 as v

from ..constants import CLASSES, FAT_MAP_CAVEAT, TEXTURE_SCORE_CAVEAT_SENTENCE

TITLE = "MDTexture: muscular dystrophy texture analysis (research software; phantom-trained)"
FAT_MAP_HELP = ("ICAM: where the network found the class's evidence; the texture scores always come from it. Fat "
                "attribution (tick 'Fat attribution map' before Classify): the fat the class logit is sensitive to. "
                "Caveat: " + FAT_MAP_CAVEAT + ".")


def build_page(server, session, act) -> SinglePageWithDrawerLayout:
    """``act(method, *args)`` runs a session method guarded; returns the layout."""
    state = server.state
    state.trame__title = "MDTexture"
    with SinglePageWithDrawerLayout(server, full_height=True) as page:
        page.title.set_text(TITLE)
        page.drawer.width = 420
        with page.toolbar:
            v.VSpacer()
            html.Span("{{ case_name }}", id="case-name", classes="mr-4 text-body-2")
            html.Span("{{ verdict }} ({{ (probabilities.find(x => x.name === verdict) || {}).percent }} %)",
                      v_if="verdict", id="toolbar-verdict", classes="mr-4 text-h6")
        with page.drawer:
            with html.Div(classes="pa-2"):
                _messages()
                _open_section(server, session, act)
                _classify_section(session, act)
                _heatmap_section(session, act)
                _muscle_section(session, act)
                _score_section(server, session, act)
        with page.content:
            with html.Div(style="position: relative; width: 100%; height: calc(100vh - 64px);", id="slice-view"):
                session.views.place_views(page)
    return page


def _section(title):
    return v.VCard(title=title, classes="mb-2", density="compact", variant="outlined")


def _messages():
    v.VAlert(v_if="error", type="error", density="compact", id="error", text=("error",), classes="mb-2")
    html.Div("{{ message }}", v_if="message", id="message", classes="text-body-2 mb-2")
    with html.Div(v_if="warnings.length", id="warnings", classes="text-caption text-warning mb-2"):
        html.Div("⚠ {{ w }}", v_for="w in warnings", key="w")


def _open_section(server, session, act):
    with _section("1. Open a case"):
        with v.VCardText():
            v.VBtn("Open a generated phantom (synthetic)", id="open-demo", block=True, classes="mb-2",
                   click=lambda: act(session.open_demo), disabled=("classify_running",))
            for role, label in (("ff", "Fat fraction"), ("water", "Water"), ("fat", "Fat"),
                                ("segmentation", "Muscles (.seg.nrrd / labelmap)")):
                v.VFileInput(label=label, v_model=(f"upload_{role}", None), id=f"upload-{role}", density="compact",
                             hide_details=True, classes="mb-1", show_size=True)
            v.VBtn("Open uploaded files", id="open-uploads", block=True, classes="mb-2",
                   click=lambda: act(_open_uploads, server, session), disabled=("classify_running",))
            if session.data_root.root is not None:
                _picker(session, act)


def _open_uploads(server, session):
    state = server.state
    roles = ("ff", "water", "fat", "segmentation")
    session.open_uploads({role: state[f"upload_{role}"] for role in roles if state[f"upload_{role}"]})
    for role in roles:  # opened: the page no longer holds the files' bytes
        state[f"upload_{role}"] = None


def _picker(session, act):
    html.Div("Data folder: /{{ picker.folder }}", classes="text-caption")
    with v.VList(density="compact", max_height=180, id="picker", classes="overflow-y-auto"):
        v.VListItem(title="..", v_if="picker.parent !== null", click=(lambda rel: act(session.browse, rel),
                                                                       "[picker.parent]"))
        v.VListItem(v_for="f in picker.folders", key="f", title=("f + '/'",), id=("'folder-' + f",),
                    click=(lambda rel: act(session.browse, rel), "[f]"))
        with v.VListItem(v_for="f in picker.files", key="f", title=("f",)):
            with html.Template(v_slot_append=True):
                for role in ("ff", "water", "fat", "segmentation"):
                    v.VBtn(role, size="x-small", variant="text", id=(f"'pick-{role}-' + f",),
                           click=(lambda rel, r=role: act(session.pick, r, rel), "[f]"))
    html.Div("Chosen: {{ JSON.stringify(picked) }}", classes="text-caption")
    v.VBtn("Open chosen files", id="open-picked", block=True, click=lambda: act(session.open_picked))


def _classify_section(session, act):
    with _section("2. Classify"):
        with v.VCardText():
            v.VCheckbox(label="Fat attribution map", v_model=("fat_map",), id="fat-map", density="compact",
                        hide_details=True, disabled=("classify_running",))
            with html.Div(classes="d-flex"):
                v.VBtn("Classify", id="classify", color="primary", disabled=("!has_case || classify_running",),
                       click=lambda: act(session.start_classify))
                v.VBtn("Cancel", id="cancel", classes="ml-2", disabled=("!classify_running",),
                       click=lambda: act(session.cancel_classify))
            v.VProgressLinear(v_if="classify_running", model_value=("progress",), id="progress", classes="my-2",
                              height=8)
            html.Div("{{ progress_text }}", classes="text-caption")
            html.Div("Verdict: {{ verdict }}", v_if="verdict", id="verdict", classes="text-h6")
            with html.Div(v_if="verdict", id="probabilities", classes="text-body-2"):
                html.Span("{{ pr.name }} {{ pr.percent }} %  ", v_for="pr in probabilities", key="pr.name",
                          classes="mr-2")
            with html.Div(v_if="legs.length", id="legs", classes="text-body-2"):
                html.Div("{{ leg.side }} leg: {{ leg.verdict }} ({{ leg.percent }} %)", v_for="leg in legs",
                         key="leg.side")
            html.Div(v_if="chart_svg", v_html=("chart_svg",), id="chart")


def _heatmap_section(session, act):
    with _section("3. Heatmap"):
        with v.VCardText():
            with v.VBtnToggle(model_value=("view_class",), density="compact", mandatory=True, id="view-class",
                              disabled=("!verdict",)):
                for c in CLASSES:
                    v.VBtn(c, value=c, id=f"class-{c}", click=lambda c=c: act(session.show_class, c))
            with v.VBtnToggle(model_value=("overlay",), density="compact", mandatory=True, id="overlay",
                              disabled=("!verdict",), classes="mt-1"):
                v.VBtn("ICAM", value="icam", id="overlay-icam", click=lambda: act(session.set_overlay, "icam"))
                v.VBtn("Fat attribution", value="fat", id="overlay-fat", disabled=("!has_fat_map",),
                       click=lambda: act(session.set_overlay, "fat"))
            html.Div(FAT_MAP_HELP, classes="text-caption")
            v.VSlider(label="Opacity", v_model=("opacity",), min=0, max=1, step=0.05, id="opacity",
                      thumb_label=True, hide_details=True, disabled=("!verdict",))
            v.VSlider(label="Show from", v_model=("display_floor",), min=0, max=0.9, step=0.05,
                      id="display-floor", thumb_label=True, hide_details=True, disabled=("!verdict",))
            session.state.change("opacity")(lambda opacity, **_: act(session.set_opacity, opacity))
            session.state.change("display_floor")(lambda display_floor, **_: act(session.set_display_floor,
                                                                                 display_floor))
            html.Div(v_if="legend_html", v_html=("legend_html",))


def _muscle_section(session, act):
    with _section("4. Muscles"):
        with v.VCardText():
            v.VBtn("Create the seven muscle segments", id="create-segments", block=True, classes="mb-2",
                   disabled=("!has_case",), click=lambda: act(session.create_segments))
            with v.VList(density="compact", id="segments", v_if="has_segmentation"):
                with v.VListItem(v_for="s in segments", key="s.id", active=("s.id === active_segment",),
                                 click=(lambda sid: act(session.select_segment, sid), "[s.id]"),
                                 id=("'segment-' + s.name",)):
                    html.Span("■ ", style=("{color: s.color}",))
                    html.Span("{{ s.name }}")
                    html.Span(" {{ s.voxels }} voxels", classes="text-caption voxel-count",
                              id=("'voxels-' + s.name",))
            with v.VBtnToggle(model_value=("effect",), density="compact", id="effects", v_if="has_segmentation"):
                for name in ("none", "paint", "erase", "scissors"):
                    v.VBtn(name, value=name, id=f"effect-{name}", click=lambda n=name: act(session.set_effect, n))
            with html.Div(classes="d-flex align-center mt-1", v_if="has_segmentation"):
                v.VTextField(label="from", v_model=("threshold_low",), type="number", density="compact",
                             hide_details=True, style="max-width: 80px")
                v.VTextField(label="to", v_model=("threshold_high",), type="number", density="compact",
                             hide_details=True, style="max-width: 80px")
                v.VBtn("Threshold", id="threshold", size="small", classes="ml-1",
                       click=lambda: act(session.threshold_segment, float(session.state.threshold_low),
                                         float(session.state.threshold_high)))
            with html.Div(classes="d-flex mt-1", v_if="has_segmentation"):
                v.VBtn("Keep largest island", id="islands", size="small", click=lambda: act(
                    session.keep_largest_island))
                v.VBtn("Undo", id="undo", size="small", classes="ml-1", disabled=("!can_undo",),
                       click=lambda: act(session.undo))


def _score_section(server, session, act):
    @server.controller.trigger("scores_csv")
    def scores_csv():
        return act(session.scores_csv) or ""

    with _section("5. Texture scores"):
        with v.VCardText():
            v.VSlider(label="Highlighted from", v_model=("score_threshold",), min=0.05, max=0.95, step=0.05,
                      thumb_label=True, hide_details=True)
            v.VBtn("Compute texture scores", id="compute-scores", block=True, disabled=("!verdict",),
                   click=lambda: act(session.compute_scores))
            server.state.score_headers = [{"title": "Muscle", "key": "muscle"}, {"title": "Score", "key": "score"},
                                          {"title": "Slices", "key": "slices"},
                                          {"title": "Mean FF %", "key": "mean_ff"}, {"title": "mL", "key": "volume_ml"}]
            v.VDataTable(v_if="score_rows.length", items=("score_rows",), id="score-table", density="compact",
                         items_per_page=-1, hide_default_footer=True,
                         headers=("legs.length ? [{title: 'Leg', key: 'leg'}].concat(score_headers) : score_headers",))
            html.Div(TEXTURE_SCORE_CAVEAT_SENTENCE, v_if="score_rows.length",
                     id="score-caveat", classes="text-caption mt-1")
            v.VBtn("Download CSV", id="download-csv", disabled=("!csv_ready",), classes="mt-2",
                   click="utils.download('texture_scores.csv', trigger('scores_csv'), 'text/csv')")
            if session.data_root.root is not None:
                with html.Div(classes="d-flex align-center mt-2"):
                    v.VTextField(label="Result folder (in the data folder)", v_model=("export_name",),
                                 density="compact", hide_details=True, id="export-name")
                    v.VBtn("Export", id="export-folder", disabled=("!verdict",), classes="ml-1",
                           click=lambda: act(session.export_folder, session.state.export_name))
