//! Tests of check_geom_lib and the class_commands decoder.
