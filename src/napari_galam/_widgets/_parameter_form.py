"""A dock form generated from a parameters dataclass: one widget per :class:`ParameterSpec`.

The fields of a parameters dataclass declared with :func:`napari_galam.parameters.parameter`
carry their label, help, range and choices, so a dock builds its form from
:func:`~napari_galam.parameters.parameter_specs` instead of typing them again: a spin box
with the range for a number (an optional number shows "none" at its lowest step), a
combo box for choices, a check box for a flag and a line edit for free text. Expert
parameters go into a section that starts collapsed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_galam.parameters import ParameterSpec

__all__ = ["ParameterForm", "widget_for"]

_NONE_TEXT = "none"
_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e9


def _decimals_for(value: float) -> int:
    """Decimals a spin box needs to show ``value`` exactly, plus one (at least 2)."""
    if not math.isfinite(value):
        return 2
    for digits in range(12):
        if round(value, digits) == value:
            return max(2, digits + 1)
    return 12


def _step_for(value: float, decimals: int) -> float:
    """A tenth of ``value``'s order of magnitude, no finer than the shown decimals."""
    if value == 0 or not math.isfinite(value):
        return 10.0**-decimals if decimals > 2 else 0.1
    return max(10.0 ** math.floor(math.log10(abs(value))) / 10.0, 10.0**-decimals)


def _number_box(spec: ParameterSpec) -> QSpinBox | QDoubleSpinBox:
    """A spin box over the spec's range; an optional one shows "none" at its minimum."""
    if spec.kind is int:
        box: QSpinBox | QDoubleSpinBox = QSpinBox()
        low, high = spec.range if spec.range is not None else (-_INT_LIMIT + 1, _INT_LIMIT)
        low, high, step = int(max(low, -_INT_LIMIT + 1)), int(min(high, _INT_LIMIT)), 1
    else:
        box = QDoubleSpinBox()
        default = float(spec.default) if spec.default is not None else 0.0
        decimals = max([_decimals_for(default)] + [_decimals_for(float(v)) for v in spec.range or ()])
        box.setDecimals(decimals)  # before the range and value, which it rounds
        low, high = spec.range if spec.range is not None else (-_FLOAT_LIMIT, _FLOAT_LIMIT)
        step = _step_for(default, decimals)
    box.setSingleStep(step)
    if spec.optional:
        low = low - step
        box.setSpecialValueText(_NONE_TEXT)
    box.setRange(low, high)
    box.setValue(low if spec.default is None else spec.default)
    return box


def widget_for(spec: ParameterSpec) -> QWidget:
    """The Qt widget that edits one parameter, set to its default, its help as tooltip."""
    if spec.kind is bool:
        widget: QWidget = QCheckBox(spec.label)
        widget.setChecked(bool(spec.default))
    elif spec.choices is not None:
        widget = QComboBox()
        widget.addItems(list(spec.choices))
        widget.setCurrentText(str(spec.default))
    elif spec.kind in (int, float):
        widget = _number_box(spec)
    else:
        widget = QLineEdit("" if spec.default is None else str(spec.default))
    widget.setToolTip(spec.help)
    return widget


def _value_of(spec: ParameterSpec, widget: QWidget) -> Any:
    """The value a widget made by :func:`widget_for` holds, of the spec's kind."""
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentText()
    if isinstance(widget, QLineEdit):
        text = widget.text()
        return None if spec.optional and not text else spec.kind(text)
    if spec.optional and widget.value() == widget.minimum():
        return None
    return spec.kind(widget.value())


class ParameterForm(QWidget):
    """The widgets of a list of parameter specs, in their order.

    Parameters
    ----------
    specs
        From :func:`napari_galam.parameters.parameter_specs`.

    Attributes
    ----------
    widgets
        The widget of each parameter, by field name.
    expert_button
        Shows or hides the expert parameters (hidden at first).
    changed
        Emitted when any value changes.
    """

    changed = Signal()

    def __init__(self, specs: Sequence[ParameterSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs = {spec.name: spec for spec in specs}
        self.widgets: dict[str, QWidget] = {spec.name: widget_for(spec) for spec in specs}
        main = QFormLayout()
        main.setContentsMargins(0, 0, 0, 0)
        expert_body = QWidget()
        expert = QFormLayout(expert_body)
        expert.setContentsMargins(0, 0, 0, 0)
        for spec in specs:
            target = expert if spec.expert else main
            widget = self.widgets[spec.name]
            if isinstance(widget, QCheckBox):
                target.addRow(widget)
            else:
                target.addRow(spec.label, widget)
            self._connect(widget)
        self.expert_button = QToolButton()
        self.expert_button.setText("expert parameters")
        self.expert_button.setCheckable(True)
        self.expert_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.expert_button.setArrowType(Qt.ArrowType.RightArrow)
        self.expert_button.toggled.connect(self._show_expert)
        self._expert_body = expert_body
        expert_body.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(main)
        has_expert = any(spec.expert for spec in specs)
        self.expert_button.setVisible(has_expert)
        layout.addWidget(self.expert_button)
        layout.addWidget(expert_body)

    def _connect(self, widget: QWidget) -> None:
        if isinstance(widget, QCheckBox):
            widget.toggled.connect(self._emit_changed)
        elif isinstance(widget, QComboBox):
            widget.currentIndexChanged.connect(self._emit_changed)
        elif isinstance(widget, QLineEdit):
            widget.editingFinished.connect(self._emit_changed)
        else:
            widget.valueChanged.connect(self._emit_changed)

    def _emit_changed(self, *_: Any) -> None:
        self.changed.emit()

    def _show_expert(self, shown: bool) -> None:
        self._expert_body.setVisible(shown)
        arrow = Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        self.expert_button.setArrowType(arrow)

    def values(self) -> dict[str, Any]:
        """Every parameter's current value, by field name."""
        return {name: _value_of(self.specs[name], w) for name, w in self.widgets.items()}
