"""Networks: the project's MobileNetV2 and the recording models built on it."""
from training.models.mobilenet_v2 import MobileNetV2
from training.models.recording_model import RecordingModel, StlEnsemble

__all__ = ["MobileNetV2", "RecordingModel", "StlEnsemble"]
