//! The FreeSWITCH seam (filled in by the module work).
