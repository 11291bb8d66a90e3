"""MDTexture in a web browser: the whole workflow on trame-slicer (a real MRML scene, slice view and segment editor
streamed to the page), started by ``mdtexture serve``.

- :mod:`.cli`: the ``serve`` command's arguments (no trame import)
- :mod:`.serve`: start the server, poll a running classification
- :mod:`.viewer`: our thin adapter over trame-slicer (the only module that imports it)
- :mod:`.session`: the page's state and callbacks, on the shared Logic of :mod:`MDTextureLib.slicer_bridge`
- :mod:`.layout`: the page
- :mod:`.files`: the data folder (picker, exports) and uploads
- :mod:`.graphics`: the probability chart, the colour legend and table rows as SVG / HTML text
"""
