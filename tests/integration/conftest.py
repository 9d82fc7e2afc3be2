"""One real control plane per test session, shared by every integration module."""

from controlplane import control_plane_fixture

control_plane = control_plane_fixture()
