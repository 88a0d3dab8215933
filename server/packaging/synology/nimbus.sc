[nimbus]
title="Nimbus"
desc="Nimbus backup server"
port_forward="yes"
dst.ports="9090/tcp"
