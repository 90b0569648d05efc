//! mote-vm (being written)
