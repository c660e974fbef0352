"""Receptive-field levels against hand computation and the gradient of a real stack."""

from __future__ import annotations

import pytest
import torch

from featuremaps import SettingsError
from featuremaps.render.receptive_diagram import field_levels, parse_stack, receptive_field_diagram


def test_the_issue_stack_by_hand():
    levels = field_levels(parse_stack("3,3s2,3"), 15)
    assert [lv.size for lv in levels] == [(15, 15), (13, 13), (6, 6), (4, 4)]
    assert [lv.field.size[0] for lv in levels] == [1, 3, 5, 9]
    assert [lv.field.jump[0] for lv in levels] == [1, 1, 2, 2]
    assert levels[-1].region == (2, 2, 2, 2)  # the centre unit
    assert levels[0].region == (4, 4, 12, 12)  # 9 x 9 input pixels


@pytest.mark.parametrize("spec, size, unit", [("3p1,3s2p1,3p1", (12, 16), (0, 7)), ("5x3s2,pool2s2,3d2", 29, (1, 0))])
def test_regions_equal_the_gradient_support(spec, size, unit):
    stack = parse_stack(spec)
    levels = field_levels(stack, size, unit)
    height, width = (size, size) if isinstance(size, int) else size
    x = torch.rand(1, 1, height, width, requires_grad=True)
    out = x
    for _, geometry in stack:
        pad = geometry.padding
        conv = torch.nn.Conv2d(1, 1, geometry.kernel_size, geometry.stride, (pad.top, pad.left), geometry.dilation)
        torch.nn.init.constant_(conv.weight, 1.0)
        out = conv(out)
    out[0, 0, unit[0], unit[1]].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    top, left, bottom, right = levels[0].region
    assert (int(rows.min()), int(cols.min())) == (max(top, 0), max(left, 0))
    assert (int(rows.max()), int(cols.max())) == (min(bottom, height - 1), min(right, width - 1))


def test_bad_specs_and_units():
    with pytest.raises(SettingsError, match="cannot read layer 'k3'; write \\[conv\\|pool\\]K"):
        parse_stack("k3")
    with pytest.raises(SettingsError, match=r"unit \(9, 0\) is outside the last layer of 4x4"):
        field_levels(parse_stack("3,3s2,3"), 15, (9, 0))


def test_diagram_marks_every_seen_cell():
    import xml.etree.ElementTree as ET

    svg = receptive_field_diagram("3,3s2,3", 15, svg=True)
    root = ET.fromstring(svg)
    seen = [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "seen"]
    assert sum(1 for e in seen if e.get("data-level") == "0") == 81
    assert sum(1 for e in seen if e.get("data-level") == "3") == 1
    assert receptive_field_diagram("3,3s2,3", 15).width > 500
