/* The checkpoint tests (test_checkpoint.c), run by test_delta.c's main as a second group. */
#ifndef SL_TEST_CHECKPOINT_H
#define SL_TEST_CHECKPOINT_H

int sl_test_checkpoint_run(void);

#endif
