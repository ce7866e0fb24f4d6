"""What the extension adds to desktop Slicer once the application has started: the shipped sample case in the Sample
Data module, and the project's terminology in the Terminologies module (the segment terminology selector then offers
the project's codes). Needs the Slicer app, so no test runs it: the APIs are Slicer 5.12.0's (SampleData.py's
`registerCustomSampleDataSource`, as Slicer's scripted-module template calls it on `startupCompleted()`;
vtkSlicerTerminologiesModuleLogic, as DICOMSegmentationPlugin.py reaches it), present since Slicer 5.10."""

from __future__ import annotations

import logging

from .resources import resource_dir
from .segments import TERMINOLOGY_CONTEXT, TERMINOLOGY_FILE

SAMPLE_CATEGORY = "SmartImaging"
# (name in the Sample Data module, file in Resources/SampleData, node name)
SAMPLES = (("Bone scan GE anterior", "GE_NM_wholebody_bone.dcm", "GE bone scan anterior"),)


def register_sample_data(thumbnail: str) -> None:
    """The sample cases under SAMPLE_CATEGORY: a click copies the shipped file (a file:// URI) into Slicer's cache
    and loads it as a volume. `thumbnail`: the image shown beside each."""
    import SampleData

    for name, file_name, node_name in SAMPLES:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category=SAMPLE_CATEGORY, sampleName=name, uris=(resource_dir("SampleData") / file_name).as_uri(),
            fileNames=file_name, nodeNames=node_name, loadFileTypes="VolumeFile", thumbnailFileName=thumbnail)


def load_terminology() -> None:
    """The project's terminology context (Resources/Terminology), once per session."""
    import slicer

    logic = slicer.modules.terminologies.logic()
    if not logic.IsTerminologyContextLoaded(TERMINOLOGY_CONTEXT) and \
            logic.LoadTerminologyFromFile(str(TERMINOLOGY_FILE)) != TERMINOLOGY_CONTEXT:
        logging.error("SmartImaging: the terminology %s could not be loaded", TERMINOLOGY_FILE)


def on_startup(thumbnail: str) -> None:
    register_sample_data(thumbnail)
    load_terminology()
