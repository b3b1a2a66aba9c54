# The ROS 2 wheels' exported *__rosidl_generator_py targets name the include directories of
# the machine that built the wheels (/opt/python/...). Point every such imported target of
# the dependencies at this interpreter's Python and numpy headers instead; the installed
# files stay untouched.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
function(posekit_use_local_python_headers)
  get_property(_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    if(_target MATCHES "__rosidl_generator_py$")
      set_target_properties(${_target} PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${Python3_INCLUDE_DIRS};${Python3_NumPy_INCLUDE_DIRS}")
    endif()
  endforeach()
endfunction()
