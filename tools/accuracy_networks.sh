# The accuracy suite's networks (sourced by tools/accuracy.sh and tools/framework_ab.sh): where each
# is read from and the global batch its plans run at. Needs $data (tests/validators/data).
net_source() { case $1 in lenet5|smallcnn) echo "$1" ;; *) echo "$data/$1.json" ;; esac; }
batch_of() { case $1 in gpt-pipe) echo 8 ;; *) echo 32 ;; esac; }
