# The resources a built extension installs beside the smartimaging package: Resources/<kind>/ for each kind in
# smartimaging/resources.py's KINDS, the one list that the wheel's build step (setup.py) reads too.
# In: SMARTIMAGING_SOURCE_DIR, the repository root. Out: SMARTIMAGING_RESOURCE_KINDS and SMARTIMAGING_RESOURCE_FILES
# (absolute paths). Testing/test_packaging.py runs it with `cmake -P`.
file(STRINGS "${SMARTIMAGING_SOURCE_DIR}/smartimaging/resources.py" _smartimaging_kinds REGEX "^KINDS = \\(")
string(REGEX MATCHALL "\"[A-Za-z]+\"" SMARTIMAGING_RESOURCE_KINDS "${_smartimaging_kinds}")
string(REPLACE "\"" "" SMARTIMAGING_RESOURCE_KINDS "${SMARTIMAGING_RESOURCE_KINDS}")
if(NOT SMARTIMAGING_RESOURCE_KINDS)
  message(FATAL_ERROR "No `KINDS = (...)` line in ${SMARTIMAGING_SOURCE_DIR}/smartimaging/resources.py")
endif()
set(SMARTIMAGING_RESOURCE_FILES)
foreach(kind ${SMARTIMAGING_RESOURCE_KINDS})
  file(GLOB_RECURSE _smartimaging_files "${SMARTIMAGING_SOURCE_DIR}/Resources/${kind}/*")
  list(APPEND SMARTIMAGING_RESOURCE_FILES ${_smartimaging_files})
endforeach()
