"""What runs on the leader only: the caches fed by watches, the work queues, the reconcile that
makes copies equal to the desired state, the writer of copies and the reporter of statuses.
"""
