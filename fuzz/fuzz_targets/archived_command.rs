//! A replicated log entry's archived command, as the state machine decodes it, then the
//! records of any write it carries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qastore_exchange::Command;

fuzz_target!(|data: &[u8]| {
    Command::is_client_write(data);
    match Command::from_entry(data) {
        Ok(Command::EncodedWrite(w)) => {
            let _ = w.decode_records();
        }
        Ok(Command::WriteGroup(ws)) => {
            for w in ws {
                let _ = w.decode_records();
            }
        }
        _ => {}
    }
});
