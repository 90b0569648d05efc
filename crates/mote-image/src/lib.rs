//! mote-image (being written)
