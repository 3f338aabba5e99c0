/* libFuzzer target for Delta checkpoints as sluice reads them (src/delta/checkpoint.c on
 * top of src/parquet/reader.c): any bytes go in as the checkpoint of version 7. Whatever
 * decodes must be a state the JSON rules accept (protocol and metaData present, the file
 * index consistent with its array) and must encode back into a checkpoint that decodes to
 * the same file count. abort() marks a broken invariant. */
#include <stdint.h>
#include <string.h>

#include "delta/delta_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    sl__delta_state st, again;
    sl_buf out;
    sl__delta_state_init(&st);
    st.keep_tombstones = true; /* as when a checkpoint is written: tombstones decoded too */
    if (sl__delta_checkpoint_decode(data, size, 7, &st, err, sizeof err) != SL_OK) {
        CHECK(err[0] != '\0');
        sl__delta_state_cleanup(&st);
        return 0;
    }
    CHECK(st.version == 7 && st.has_protocol && st.has_metadata);
    CHECK(st.n_slots >= 2 * st.n_files);
    sl_buf_init(&out, 64 << 20);
    sl__delta_state_init(&again);
    again.keep_tombstones = true;
    if (sl__delta_checkpoint_encode(&st, INT64_MIN, &out, NULL, err, sizeof err) == SL_OK) {
        CHECK(sl__delta_checkpoint_decode(out.data, out.len, 7, &again, err, sizeof err) == SL_OK);
        CHECK(again.n_files == st.n_files && again.n_txns == st.n_txns);
    }
    sl__delta_state_cleanup(&again);
    sl_buf_cleanup(&out);
    sl__delta_state_cleanup(&st);
    return 0;
}
