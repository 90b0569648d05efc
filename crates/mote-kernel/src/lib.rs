//! mote-kernel (being written)
