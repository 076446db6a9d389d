"""ferops: facial-expression recognition from data to EdgeTPU."""
