"""Browser reading station on trame-slicer: the four modules' flows on the same MRML adapters as desktop Slicer.

- `cases`: sample cases per module (phantoms, the shipped GE bone scan, real cases from ../shared when present) and
  reading uploaded files;
- `flows`: one flow per module (load -> Segment -> edit -> compute) over a vtkMRMLScene, long steps in the worker;
- `app`: the trame-slicer page (slice views, module panels, Slicer's segment editor) and `smartimaging app`.
"""
