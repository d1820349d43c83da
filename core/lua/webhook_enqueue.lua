-- Queues a delivery job as arq 0.28's enqueue_job does (the job under `arq:job:<id>`, expiring
-- a day after it is due, and its id in the queue scored with its start time), unless a job with
-- that id exists. ARGV 1-5 of the scripts that queue jobs: the job key prefix, the job as arq
-- serializes it, now (ms), arq's extra expiry (ms), and an unused job id for a job due now.
local job_prefix, job, now, extra, fresh_id = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local function enqueue(queue, job_id, at)
  if redis.call('SET', job_prefix .. job_id, job, 'NX', 'PX', at - now + extra) then
    redis.call('ZADD', queue, at, job_id)
  end
end
