"""Test-only stand-in for PythonQt's ``qt`` module: the Qt classes and calls MDTexture.py makes, nothing more.

Written to PythonQt's conventions so the Widget code runs unchanged: Qt properties are Python attributes
(``button.text = "x"``, ``combo.currentText``), signals are connected by their C++ signature
(``button.connect("clicked(bool)", slot)``), a property setter emits the matching change signal as Qt does (only when
the value changes), and ``blockSignals`` mutes them. Unknown properties, methods and signal signatures raise, so a
typo in the Widget fails here instead of in Slicer. Names and signatures were checked against Qt 5 and Slicer's
use of them (qSlicer/ctk/qMRML headers).
"""

from __future__ import annotations


def _positional_capacity(slot, available: int) -> int:
    """PythonQt calls a Python slot with only as many of the signal's arguments as it accepts (the Slicer template
    connects "clicked(bool)" to ``def onApplyButton(self)``)."""
    import inspect

    try:
        params = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return available
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return available
    return min(available, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params))


class _QObject:
    """Properties (name -> default) and signals (C++ signatures) are declared per class and merged along the MRO."""

    PROPERTIES: dict = {}
    SIGNALS: tuple = ()

    def __init__(self, parent=None):
        props = {}
        for klass in reversed(type(self).__mro__):
            props.update(getattr(klass, "PROPERTIES", {}))
        object.__setattr__(self, "_props", props)
        object.__setattr__(self, "_slots", {})
        object.__setattr__(self, "_blocked", False)
        object.__setattr__(self, "objectName", "")

    @classmethod
    def _signals(cls) -> set:
        return {s for klass in cls.__mro__ for s in getattr(klass, "SIGNALS", ())}

    def connect(self, signal: str, slot) -> bool:
        if signal not in self._signals():
            raise AttributeError(f"{type(self).__name__} has no signal {signal!r}")
        self._slots.setdefault(signal, []).append(slot)
        return True

    def disconnect(self, signal: str, slot=None) -> bool:
        slots = self._slots.get(signal, [])
        if slot is None:
            slots.clear()
        elif slot in slots:
            slots.remove(slot)
        return True

    def emit(self, signal: str, *args) -> None:
        """What Qt does when the signal fires (tests call it for user actions: clicks, timer ticks)."""
        if signal not in self._signals():
            raise AttributeError(f"{type(self).__name__} has no signal {signal!r}")
        if self._blocked:
            return
        for slot in list(self._slots.get(signal, [])):
            slot(*args[:_positional_capacity(slot, len(args))])

    def blockSignals(self, block: bool) -> bool:
        previous = self._blocked
        object.__setattr__(self, "_blocked", bool(block))
        return previous

    def __getattr__(self, name):
        props = object.__getattribute__(self, "_props")
        if name in props:
            return props[name]
        raise AttributeError(f"{type(self).__name__} has no property or method {name!r}")

    def __setattr__(self, name, value):
        if name.startswith("_") or name == "objectName":
            object.__setattr__(self, name, value)
            return
        if name not in self._props:
            raise AttributeError(f"{type(self).__name__} has no property {name!r}")
        old = self._props[name]
        value = self._coerce(name, value)
        self._props[name] = value
        if old != value:
            self._changed(name, value)

    def _coerce(self, name, value):
        return value

    def _changed(self, name, value) -> None:
        """Emit the property's change signal, as the Qt class does."""


class QWidget(_QObject):
    PROPERTIES = {"enabled": True, "visible": True, "toolTip": ""}

    def show(self):
        self.visible = True

    def hide(self):
        self.visible = False

    def setEnabled(self, enabled):
        self.enabled = bool(enabled)

    def setVisible(self, visible):
        self.visible = bool(visible)

    def isVisible(self):
        return self.visible

    def setToolTip(self, text):
        self.toolTip = text


class QLabel(QWidget):
    PROPERTIES = {"text": "", "wordWrap": False}

    def setText(self, text):
        self.text = text


class QAbstractButton(QWidget):
    PROPERTIES = {"text": "", "checkable": False, "checked": False}
    SIGNALS = ("clicked()", "clicked(bool)", "toggled(bool)")

    def click(self):
        """A user click: toggles a checkable button, then emits clicked."""
        if self.enabled:
            if self.checkable:
                self.checked = not self.checked
            self.emit("clicked()")
            self.emit("clicked(bool)", self.checked)

    def _changed(self, name, value):
        if name == "checked":
            self.emit("toggled(bool)", value)


class QPushButton(QAbstractButton):
    pass


class QCheckBox(QAbstractButton):
    PROPERTIES = {"checkable": True}


class QComboBox(QWidget):
    PROPERTIES = {"currentIndex": -1}
    SIGNALS = ("currentIndexChanged(int)", "currentTextChanged(QString)")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._items = []

    def addItem(self, text):
        self._items.append(str(text))
        if self.currentIndex < 0:
            self.currentIndex = 0

    def addItems(self, texts):
        for t in texts:
            self.addItem(t)

    def clear(self):
        self._items = []
        self.currentIndex = -1

    def count(self):
        return len(self._items)

    def itemText(self, index):
        return self._items[index] if 0 <= index < len(self._items) else ""

    def findText(self, text):
        return self._items.index(text) if text in self._items else -1

    def setCurrentIndex(self, index):
        self.currentIndex = index

    def setCurrentText(self, text):
        index = self.findText(text)
        if index >= 0:
            self.currentIndex = index

    @property
    def currentText(self):
        return self.itemText(self.currentIndex)

    def _coerce(self, name, value):
        if name != "currentIndex":
            return value
        value = int(value)
        if not -1 <= value < len(self._items):
            return self._props[name]  # Qt ignores an out-of-range index
        return value

    def _changed(self, name, value):
        if name != "currentIndex":
            return
        self.emit("currentIndexChanged(int)", value)
        self.emit("currentTextChanged(QString)", self.currentText)


class _Range(QWidget):
    PROPERTIES = {"value": 0.0, "minimum": 0.0, "maximum": 99.0, "singleStep": 1.0}
    SIGNALS = ("valueChanged(double)",)

    def setValue(self, value):
        self.value = value

    def _coerce(self, name, value):
        if name in ("value", "minimum", "maximum", "singleStep"):
            value = float(value)
        if name == "value":
            return min(max(value, self.minimum), self.maximum)
        return value

    def _changed(self, name, value):
        if name == "value":
            self.emit("valueChanged(double)", value)


class QDoubleSpinBox(_Range):
    PROPERTIES = {"decimals": 2, "suffix": "", "prefix": ""}


class QProgressBar(QWidget):
    PROPERTIES = {"value": 0, "minimum": 0, "maximum": 100, "format": "%p%", "textVisible": True}
    SIGNALS = ("valueChanged(int)",)

    def setFormat(self, text):
        self.format = text

    def setValue(self, value):
        self.value = int(value)

    def setRange(self, minimum, maximum):
        self.minimum, self.maximum = int(minimum), int(maximum)

    def reset(self):
        self.value = self.minimum

    def _changed(self, name, value):
        if name == "value":
            self.emit("valueChanged(int)", value)


class QPlainTextEdit(QWidget):
    PROPERTIES = {"plainText": "", "readOnly": False}
    SIGNALS = ("textChanged()",)

    def appendPlainText(self, text):
        self.plainText = (self.plainText + "\n" if self.plainText else "") + str(text)

    def toPlainText(self):
        return self.plainText

    def clear(self):
        self.plainText = ""

    def _changed(self, name, value):
        if name == "plainText":
            self.emit("textChanged()")


class QTimer(_QObject):
    """Timers never fire by themselves here: a test plays the event loop by calling ``fire()`` on active timers."""

    PROPERTIES = {"interval": 0, "singleShot": False}
    SIGNALS = ("timeout()",)
    created: list = []  # every timer made, so a test can find the Widget's

    def __init__(self, parent=None):
        super().__init__(parent)
        self._active = False
        QTimer.created.append(self)

    def setInterval(self, msec):
        self.interval = int(msec)

    def setSingleShot(self, single):
        self.singleShot = bool(single)

    def start(self, msec=None):
        if msec is not None:
            self.interval = int(msec)
        self._active = True

    def stop(self):
        self._active = False

    def isActive(self):
        return self._active

    def fire(self):
        """One tick of the event loop for this timer."""
        if self._active:
            if self._props["singleShot"]:
                self._active = False
            self.emit("timeout()")

    @staticmethod
    def singleShot(msec, callback):  # noqa: F811  (PythonQt exposes both the property and the static method)
        callback()


class Qt:
    WaitCursor = 3
    ArrowCursor = 0


class QFileDialog:
    """``getSaveFileName(parent, caption, dir, filter)`` as PythonQt returns it: the chosen path, or ''."""

    calls: list = []
    answer: str = ""

    @staticmethod
    def getSaveFileName(parent, caption, directory, filter_text):
        QFileDialog.calls.append({"caption": caption, "dir": directory, "filter": filter_text})
        return QFileDialog.answer

    @staticmethod
    def getOpenFileName(parent, caption, directory, filter_text):
        QFileDialog.calls.append({"caption": caption, "dir": directory, "filter": filter_text})
        return QFileDialog.answer


class QVBoxLayout(_QObject):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._widgets = []

    def addWidget(self, widget):
        self._widgets.append(widget)

    def addStretch(self, stretch=0):
        pass
