//! The `JOURNAL` GEOM class. Not written yet: it arrives with its own issue, on top of the safe
//! class API. The crate exists so the workspace has its final shape.
#![no_std]
#![deny(unsafe_code)]
