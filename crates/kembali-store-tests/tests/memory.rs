//! The conformance suite on the in-memory fake store.

use kembali_app::fake::MemoryStore;

async fn memory() -> (MemoryStore, ()) {
    (MemoryStore::new(), ())
}

kembali_store_tests::conformance_tests!(memory);
