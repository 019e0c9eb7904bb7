#!/bin/bash
# Run ceph/s3-tests test_s3.py against the orbit started by setup.sh, excluding what Orbit does not claim.
cd ${S3TESTS_DIR:-/tmp/s3-tests}
M='not (fails_on_aws or bucket_logging or bucket_logging_cleanup or fails_without_logging_rollover or encryption or sse_s3 or bucket_encryption or lifecycle or lifecycle_expiration or lifecycle_transition or bucket_policy or tagging or object_ownership or cloud_transition or cloud_restore or delete_marker or iam_user or iam_account or storage_class or target_by_bucket or s3select or s3website)'
K='not (versioning or versioned or version or acl or cors or website or object_lock or lock or policy or torrent or lifecycle or logging or tagging or sse or encryption or replication or notification or select or ownership or restore or storage_class or append or grant or public or bypass or legal_hold or retention or owner or inventory)'
S3TEST_CONF=${S3TESTS_RUN:-/tmp/s3tests-run}/s3tests.conf nice -n 10 timeout ${T:-1500} ${S3TESTS_VENV:-/tmp/s3tests-venv}/bin/python -m pytest \
  s3tests/functional/test_s3.py -m "$M" -k "$K" -q --timeout=60 -p no:cacheprovider -rfE "$@"
