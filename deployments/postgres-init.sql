-- Run once by the postgres image on an empty volume: the oco-l3 state database beside Prefect's own.
CREATE DATABASE oco_l3;
