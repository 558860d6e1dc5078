"""Distillation teachers: strong face encoders that label every training view.

One module per teacher behind one interface (:class:`base.Teacher`); ``model-build
train --teacher NAME`` picks one. Teachers run at build time only (the ``build``
extra): the door never loads them.

| name | model | dim | licence |
|---|---|---|---|
| ``sface`` | OpenCV SFace 2021dec (int8bq weights, run as fp32) | 128 | Apache-2.0 |
| ``mbf`` | InsightFace ``w600k_mbf`` (MobileFaceNet, WebFace600K) | 512 | non-commercial research only |
| ``dlib`` | dlib ``face_recognition_resnet_model_v1`` | 128 | Boost (weights CC0) |
"""

from __future__ import annotations

from model_build.teachers.base import Teacher, TeacherError, TeacherInfo

TEACHER_DIMS = {"sface": 128, "mbf": 512, "dlib": 128}
TEACHER_NAMES = tuple(TEACHER_DIMS)


def get_teacher(name: str, threads: int = 1) -> Teacher:
    """The named teacher, loaded (raises TeacherError with an install hint)."""
    if name == "sface":
        from model_build.teachers.sface import SFaceTeacher
        return SFaceTeacher(threads=threads)
    if name == "mbf":
        from model_build.teachers.arcface_mbf import MbfTeacher
        return MbfTeacher(threads=threads)
    if name == "dlib":
        from model_build.teachers.dlib import DlibTeacher
        return DlibTeacher()
    raise TeacherError(f"unknown teacher {name!r}; choose one of {', '.join(TEACHER_NAMES)}")


__all__ = ["TEACHER_DIMS", "TEACHER_NAMES", "Teacher", "TeacherError", "TeacherInfo", "get_teacher"]
